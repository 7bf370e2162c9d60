"""`finscribe import-dataset`: public real data sets in their published formats → crops + annotations.

    finscribe import-dataset --format sroie --input SROIE2019/train --output-dir data/sroie
    finscribe import-dataset --format cord --input CORD/train --output-dir data/cord
    finscribe import-dataset --format label-studio --input export.json --output-dir data/labelled
    finscribe build-dataset --crops-dir data/sroie/crops --annotations-dir data/sroie/annotations \
        --output data/sroie.jsonl

Each format's reader (`finscribe.data.importers.{sroie,cord,label_studio}`) writes
`OUTPUT_DIR/crops/<id>__<region>.png` and `OUTPUT_DIR/annotations/<id>__<region>.json`, normalising values
to the data contract under the format's rules (or `--date-format`/`--decimal-comma`/`--currency`
given here), and `OUTPUT_DIR/import_report.json`: every field or section it could not map, every
value it changed or could not read, and every crop that fell back to the whole image.
An import that writes nothing fails (after writing its report) with one line naming the folders
and file patterns the format's reader looked for and what it found there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finscribe.config import arg, parse_config, save_config
from finscribe.data.importers.common import ImportReport
from finscribe.data.importers.cord import import_cord
from finscribe.data.importers.label_studio import import_label_studio
from finscribe.data.importers.sroie import DATE_FORMATS, import_sroie
from finscribe.data.normalize import Rules
from finscribe.data.records import DatasetBuildError
from finscribe.data.schema import CURRENCY_CODES
from finscribe.fileio import write_json_atomic

IMPORTERS = {"sroie": import_sroie, "cord": import_cord, "label-studio": import_label_studio}


@dataclass
class ImportDatasetConfig:
    format: Literal["sroie", "cord", "label-studio"] = arg(help="the data set's published format")
    input: Path = arg(help="SROIE folder (img/, box/, entities/), CORD folder (json/, image/), or Label Studio export .json",
                      path="any")
    output_dir: Path = arg(help="folder for crops/, annotations/ and import_report.json", aliases=("--output",))
    date_format: tuple[str, ...] = arg((), "date formats to read, tried in order (default: the format's own; "
                                          "SROIE: DD/MM/YYYY and kin)")
    decimal_comma: bool = arg(False, "amounts use ',' as decimal mark (default: '.'; CORD: whole amounts)")
    currency: str | None = arg(None, "ISO code fixing the minor units of amounts (e.g. MYR for SROIE)")

    def __post_init__(self) -> None:
        if self.currency is not None and self.currency not in CURRENCY_CODES:
            raise ValueError(f"--currency {self.currency!r} is not an ISO 4217 code")

    def rules(self) -> Rules | None:
        """The rules given on the command line, or None for the format's defaults."""
        if not (self.date_format or self.decimal_comma or self.currency):
            return None
        default = {"sroie": Rules(DATE_FORMATS), "cord": Rules((), None)}.get(self.format, Rules())
        return Rules(tuple(self.date_format) or default.date_formats,
                     "," if self.decimal_comma else default.decimal_mark, self.currency)


def import_dataset(config: ImportDatasetConfig) -> ImportReport:
    """Run the chosen importer and write its report; returns it. Raises DatasetBuildError when
    nothing could be imported (a layout the reader does not know, or no usable value)."""
    report = IMPORTERS[config.format](Path(config.input), Path(config.output_dir), config.rules())
    save_config(config, Path(config.output_dir), name="import_config.json")
    report_path = Path(config.output_dir) / "import_report.json"
    write_json_atomic(report_path, report.to_dict())
    if not report.written:
        found = ", ".join(f"{n} {what}" for what, n in report.found.items()) or "nothing"
        looked = f"looked for {report.looked_for}" if report.looked_for else f"no {config.format} document found"
        raise DatasetBuildError(f"{config.input}: nothing imported as {config.format} ({looked}; found {found}; "
                                f"{len(report.unmapped)} unmapped item(s) in {report_path})")
    return report


def main(argv: list[str] | None = None, prog: str = "finscribe import-dataset") -> int:
    config = parse_config(ImportDatasetConfig, argv, prog, __doc__.split("\n\n")[0])
    try:
        report = import_dataset(config)
    except OSError as err:  # a missing input, an unwritable output: one line naming the file
        raise DatasetBuildError(f"{err.filename or config.input}: {err.strerror or err}") from None
    print(f"wrote {len(report.written)} crop(s) + annotation(s) to {config.output_dir}; "
          f"{len(report.unmapped)} unmapped item(s), {len(report.whole_image)} whole-image crop(s), "
          f"{len(report.normalized.changed)} value(s) normalised; see {Path(config.output_dir) / 'import_report.json'}")
    return 0


if __name__ == "__main__":
    from finscribe.cli import run

    raise SystemExit(run(main, prog="python -m finscribe.data.import_dataset"))
