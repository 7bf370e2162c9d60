"""Markdown renderings of the evaluation report and the comparison (report.md, comparison.md)."""

from __future__ import annotations

from typing import Any

from finscribe.eval.digits import digit_table
from finscribe.eval.scoring import METRICS

_SHORT = {"field_accuracy": "field acc", "numeric_accuracy": "numeric", "exact_match": "exact",
          "field_f1": "F1", "tree_edit_accuracy": "tree-edit", "teds": "TEDS", "teds_structure": "TEDS-S", "row_exact_match": "rows",
          "validation_pass_rate": "valid", "json_validity_rate": "JSON", "repetition_rate": "repeat",
          "char_accuracy": "char"}


def fmt(value: Any, digits: int = 3) -> str:
    """A figure to `digits` decimals, or "–" where there is none."""
    return "–" if value is None else f"{value:.{digits}f}"


def signed(value: Any) -> str:
    """A difference with its sign, or "–"."""
    return "–" if value is None else f"{value:+.3f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _metrics_table(groups: dict[str, dict[str, Any]], first: str) -> list[str]:
    keys = [k for k, _ in METRICS]
    lines = [f"| {first} | records | " + " | ".join(_SHORT[k] for k in keys) + " |",
             "|---|---:|" + "---:|" * len(keys)]
    for name, row in groups.items():
        lines.append(f"| {_cell(name)} | {row['records']} | " + " | ".join(fmt(row[k]) for k in keys) + " |")
    return lines


def coverage_lines(coverage: dict[str, dict[str, Any]]) -> list[str]:
    """The "fields in the labels" table: per region, records and how many carried each field
    (partial annotations are scored on exactly their fields)."""
    if not coverage:
        return []
    lines = ["", "## Fields in the labels", "", "| region | records | fields per record | field: records |", "|---|---:|---|---|"]
    for region, row in coverage.items():
        per_record = ", ".join(f"{k}: {n}" for k, n in row["fields_per_record"].items())
        fields = ", ".join(f"{name}: {n}" for name, n in row["fields"].items())
        lines.append(f"| {_cell(region)} | {row['records']} | {_cell(per_record)} | {_cell(fields)} |")
    return lines


def report_markdown(report: dict[str, Any]) -> str:
    """report.md of `finscribe evaluate`."""
    lines = [f"# Evaluation of `{report['model']}`", "",
             f"Data `{report['data']}`, split `{report['split']}`: {report['records']} records from "
             f"{report['documents']} documents; max_new_tokens {report['max_new_tokens']}.", "",
             *(["**Control run: every image was replaced by a white image of the same size**; these scores are "
                "what the model answers from its priors alone, without seeing the document.", ""]
               if report.get("blank_images") else []),
             "## Overall", "", "| metric | value | 95 % CI (bootstrap over documents) |", "|---|---:|---|"]
    for key, label in METRICS:
        ci = report["ci95"][key]
        interval = "–" if ci["ci_low"] is None else f"[{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]"
        lines.append(f"| {label} | {fmt(report['overall'][key])} | {interval} |")
    if "generalisation" in report:
        lines += ["", "## Seen vs held-out layouts", "",
                  f"Held out of training: {', '.join(report['held_out_layouts'])}.", ""]
        lines += _metrics_table(report["generalisation"], "layouts")
    else:
        lines += ["", "(Layouts held out of training unknown: no generator config found; pass --held-out-layouts "
                  "for a seen vs held-out split.)"]
    lines += ["", "## Per region", ""] + _metrics_table(report["per_region"], "region")
    lines += ["", "## Per layout", ""] + _metrics_table(report["per_layout"], "layout")
    lines += ["", "## Per field", "", "![per-field accuracy](field_accuracy.png)", "",
              "| field | accuracy | correct / total |", "|---|---:|---:|"]
    for name, row in report["per_field"].items():
        lines.append(f"| {_cell(name)} | {fmt(row['accuracy'])} | {row['correct']} / {row['total']} |")
    lines += coverage_lines(report.get("field_coverage") or {})
    if report.get("digit_positions"):
        lines += ["", "## Amount digits by position", "",
                  "Share of the reference's digits right at each power of ten (predicted and reference amounts "
                  "aligned at the decimal point; digit count in brackets): a reading model misses few positions, "
                  "a guessing one gets the likely leading digits and misses the rest.", ""]
        lines += digit_table(report["digit_positions"])
    if report.get("row_positions"):
        lines += ["", "## Line-item rows by position", "",
                  "Ground-truth rows read exactly, by their place in the table: a reader that reads the top of a long "
                  "table and invents the rest falls from band to band.", "",
                  "| rows | exact | correct / total |", "|---|---:|---:|"]
        lines += [f"| {band.removeprefix('rows ')} | {fmt(row['accuracy'])} | {row['correct']} / {row['total']} |"
                  for band, row in report["row_positions"].items()]
    lines += ["", "## Errors", "", "![error breakdown](error_breakdown.png)", "", "| outcome | records |", "|---|---:|"]
    lines += [f"| {kind} | {n} |" for kind, n in report["error_breakdown"].items()]
    if report["violations"]:
        lines += ["", "| violated rule | count |", "|---|---:|"]
        lines += [f"| {rule} | {n} |" for rule, n in report["violations"].items()]
    timing = report["timing"]
    lines += ["", "## Speed", "",
              f"{fmt(timing['mean_seconds_per_image'])} s per image (batch time / batch size), "
              f"{fmt(timing['mean_new_tokens'], 1)} generated and {fmt(timing['mean_prompt_tokens'], 1)} prompt tokens "
              f"on average; {fmt(report['prediction_seconds'], 1)} s in all."]
    lines += ["", "## Worst examples", "", "| document | region | layout | field acc | char | output | target |",
              "|---|---|---|---:|---:|---|---|"]
    for ex in report["worst_examples"]:
        output = ex["raw_text"] + (" (repetition)" if ex["repetition"] else "")
        lines.append(f"| {_cell(ex['source_id'])} | {ex['region']} | {_cell(ex['layout'])} | {fmt(ex['field_accuracy'])} "
                     f"| {fmt(ex['char_accuracy'])} | `{_cell(output)}` | `{_cell(ex['target'])}` |")
    return "\n".join(lines) + "\n"


def comparison_markdown(result: dict[str, Any]) -> str:
    """comparison.md of `finscribe compare`."""
    boot = result["bootstrap"]
    lines = [f"# `{result['model']}` vs base `{result['base']}`", "",
             f"Data `{result['data']}`, split `{result['split']}`: the same {result['records']} records "
             f"({result['documents']} documents) for both models. Delta = model − base; 95 % interval from a paired "
             f"bootstrap over documents ({boot['resamples']} resamples, seed {boot['seed']}).", "",
             "## Metrics", "", "![comparison](comparison.png)", "",
             "| metric | base | model | delta | 95 % CI | model on blank images |", "|---|---:|---:|---:|---|---:|"]
    control = result.get("blank_images", {}).get("overall", {})
    for key, label in METRICS:
        d = result["deltas"][key]
        interval = "–" if d["ci_low"] is None else f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
        lines.append(f"| {label} | {fmt(d['base'])} | {fmt(d['model'])} | {signed(d['delta'])} | {interval} "
                     f"| {fmt(control.get(key)) if control else 'not run'} |")
    if control:
        lines += ["", "*Model on blank images*: the fine-tuned model once more, on white images of the same sizes. "
                  "What it still scores there comes from priors (schema, typical values), not from reading; "
                  "only the part of its score above that column needs the document."]
    lines += _digit_sections(result)
    sections = [("Per region", result["per_region"])]
    if "generalisation" in result:
        sections.append(("Seen vs held-out layouts", result["generalisation"]))
    for title, table in sections:
        lines += ["", f"## {title}", "", "| group | records | field acc base | field acc model | delta "
                  "| char base | char model | valid base | valid model |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, row in table.items():
            b, m = row["base"], row["model"]
            delta = None if b["field_accuracy"] is None or m["field_accuracy"] is None else m["field_accuracy"] - b["field_accuracy"]
            lines.append(f"| {_cell(name)} | {row['records']} | {fmt(b['field_accuracy'])} | {fmt(m['field_accuracy'])} "
                         f"| {signed(delta)} | {fmt(b['char_accuracy'])} | {fmt(m['char_accuracy'])} "
                         f"| {fmt(b['validation_pass_rate'])} | {fmt(m['validation_pass_rate'])} |")
    return "\n".join(lines) + "\n"


def _digit_sections(result: dict[str, Any]) -> list[str]:
    """Amount digits right per position: all amounts for base, model and the blank-image control,
    then the model per field (where a run that does not read yet stalls)."""
    digits = result.get("digit_positions") or {}
    sides = {"base": digits.get("base", {}), "model": digits.get("model", {}),
             "model on blank images": result.get("blank_images", {}).get("digit_positions", {})}
    every = {name: table["all amounts"] for name, table in sides.items() if "all amounts" in table}
    if not every:
        return []
    return ["", "## Amount digits by position", "",
            "Share of the reference's digits right at each power of ten (amounts aligned at the decimal point; "
            "digit count in brackets).", "", *digit_table(every), "", "Fine-tuned model per field:", "",
            *digit_table(sides["model"])]
