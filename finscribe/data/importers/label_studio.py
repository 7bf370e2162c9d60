"""Label Studio: FinScribe's predictions out as pre-annotations, corrected tasks back in as annotations.

Out (`finscribe label-studio-tasks`): each row of a predictions JSONL (`finscribe evaluate`'s
predictions.jsonl, or any `{"image", "region", "parsed"}` rows) becomes a task whose `data`
holds the crop's URL, its region and its path, and whose `predictions` hold one TextArea result
per predicted field. `label_config.xml` beside it is the labelling interface to paste into the
project (Settings → Labeling Interface): one TextArea per field name, `line_items` as JSON rows.

    finscribe label-studio-tasks --predictions runs/eval/predictions.jsonl --output ls/tasks.json \
        [--url-prefix /data/local-files/?d=] [--document-root /path/served/by/label-studio]

In (`finscribe import-dataset --format label-studio --input export.json --output-dir DIR`): the
JSON export of the project (a list of tasks, each with `data` and `annotations`, every
annotation a list of `result` items `{"from_name", "to_name", "type", "value": {"text": [...]}}`)
becomes crops + annotations. The newest annotation that was not cancelled counts; a field left
empty is not annotated (partial annotations are valid). Tasks without annotation, unknown
field names and unreadable `line_items` go into the report.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finscribe.config import arg, parse_config
from finscribe.data.importers.common import ImportReport, open_image, write_pair
from finscribe.data.normalize import Rules
from finscribe.data.schema import REGION_FIELDS, REGIONS
from finscribe.fileio import write_json_atomic, write_text_atomic

FIELD_NAMES: tuple[str, ...] = tuple(dict.fromkeys(name for region in REGIONS for name in REGION_FIELDS[region]))
MODEL_VERSION = "finscribe"


def label_config() -> str:
    """The Label Studio labelling interface: the crop, its region, one TextArea per field."""
    areas = "\n".join(
        f'  <Header value="{name}"/>\n  <TextArea name="{name}" toName="image" editable="true" '
        f'maxSubmissions="1" rows="{8 if name == "line_items" else 1}"/>'
        for name in FIELD_NAMES
    )
    return ('<View>\n  <Image name="image" value="$image" zoom="true"/>\n  <Header value="Region: $region"/>\n'
            f"{areas}\n</View>\n")


def _text(name: str, value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1) if name == "line_items" else str(value)


def prediction_task(row: dict[str, Any], url_prefix: str = "/data/local-files/?d=",
                    document_root: Path | None = None) -> dict[str, Any]:
    """One Label Studio task with the row's parsed prediction as pre-annotation."""
    image = Path(row["image"]).resolve()
    shown = image.relative_to(document_root.resolve()) if document_root else image
    result = [
        {"from_name": name, "to_name": "image", "type": "textarea", "value": {"text": [_text(name, value)]}}
        for name, value in (row.get("parsed") or {}).items() if name in FIELD_NAMES
    ]
    return {
        "data": {"image": f"{url_prefix}{shown.as_posix()}", "region": row["region"],
                 "finscribe_image": str(image), "source_id": row.get("source_id") or image.stem},
        "predictions": [{"model_version": MODEL_VERSION, "result": result}],
    }


def _latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    done.sort(key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
    return done[-1] if done else None


def _fields(region: str, result: list[Any], report: ImportReport, source: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for item in result:
        name = item.get("from_name") if isinstance(item, dict) else None
        texts = (item.get("value") or {}).get("text") if isinstance(item, dict) else None
        if name not in REGION_FIELDS[region]:
            report.miss(source, str(name), texts, f"not a field of {region}")
            continue
        text = "\n".join(t for t in texts or [] if isinstance(t, str)).strip()
        if not text:
            continue  # left empty: not annotated
        if name == "line_items":
            try:
                fields[name] = json.loads(text)
            except json.JSONDecodeError as err:
                report.miss(source, name, text, f"line_items is not a JSON list of rows ({err.msg})")
            continue
        fields[name] = text
    return fields


def import_label_studio(export: Path, output: Path, rules: Rules | None = None) -> ImportReport:
    """Import a Label Studio JSON export into output/crops and output/annotations."""
    rules = rules or Rules()
    report = ImportReport("label-studio", str(export))
    try:
        tasks = json.loads(Path(export).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileNotFoundError(f"{export}: not a readable Label Studio JSON export ({err})") from None
    if not isinstance(tasks, list):
        raise FileNotFoundError(f"{export}: expected a JSON list of tasks (Export → JSON in Label Studio)")
    for n, task in enumerate(tasks):
        data = task.get("data", {}) if isinstance(task, dict) else {}
        source = f"{export}: task {task.get('id', n) if isinstance(task, dict) else n}"
        region = data.get("region")
        if region not in REGIONS:
            report.miss(source, "region", region, f"task data has no region of {list(REGIONS)}")
            continue
        annotation = _latest_annotation(task)
        if annotation is None:
            report.miss(source, "annotations", None, "no completed annotation; label the task or leave it out")
            continue
        image_path = data.get("finscribe_image")
        if image_path and not Path(image_path).is_absolute():  # relative to the export file
            image_path = str(Path(export).parent / image_path)
        image = open_image(Path(image_path), report, source) if image_path else None
        if image is None:
            if not image_path:
                report.miss(source, "image", data.get("image"), "task data has no finscribe_image path")
            continue
        fields = _fields(region, annotation.get("result") or [], report, source)
        name = str(data.get("source_id") or Path(image_path).stem).replace("/", "_")
        if name.endswith(f"__{region}"):
            name = name[: -len(f"__{region}")]
        write_pair(output, name, image, None, region, fields, source, rules, report)
    return report


# ----------------------------------------------------------------------------- the export stage


@dataclass
class LabelStudioTasksConfig:
    predictions: Path = arg(help="predictions JSONL: rows with image, region and parsed (finscribe evaluate's predictions.jsonl)")
    output: Path = arg(help="tasks JSON file to write (label_config.xml goes beside it)")
    url_prefix: str = arg("/data/local-files/?d=", "prefix of the image URL Label Studio loads (local files storage)")
    document_root: Path | None = arg(None, "folder Label Studio serves local files from; image paths become relative to it")


def export_tasks(predictions: Path, output: Path, url_prefix: str = "/data/local-files/?d=",
                 document_root: Path | None = None) -> int:
    """Write the tasks of a predictions JSONL and label_config.xml; returns the task count."""
    rows = []
    for n, line in enumerate(Path(predictions).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row, dict) or "image" not in row or row.get("region") not in REGIONS:
                raise ValueError(f"{predictions}:{n}: expected a row with image and a region of {list(REGIONS)}")
            rows.append(row)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, [prediction_task(r, url_prefix, document_root) for r in rows])
    write_text_atomic(output.with_name("label_config.xml"), label_config())
    return len(rows)


def export_main(argv: list[str] | None = None, prog: str = "finscribe label-studio-tasks") -> int:
    config = parse_config(LabelStudioTasksConfig, argv, prog, __doc__.split("\n\n")[0])
    try:
        count = export_tasks(config.predictions, config.output, config.url_prefix, config.document_root)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {count} task(s) to {config.output} and the labelling interface to "
          f"{config.output.with_name('label_config.xml')}")
    return 0

