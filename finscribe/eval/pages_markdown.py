"""Markdown and console renderings of the page evaluation (`finscribe.eval.pages`): report.md of
`evaluate --pages`, comparison.md of `compare --pages`, and their console tables."""

from __future__ import annotations

from typing import Any

from finscribe.eval.report_markdown import fmt, signed
from finscribe.eval.scoring import METRICS

DETECTED, ORACLE = "detected", "oracle"  # the two sides of every page report: detected boxes, true boxes


def difference(a: float | None, b: float | None) -> float | None:
    """a - b, or None where either is missing (a side that was not run)."""
    return None if a is None or b is None else a - b


def _detection_lines(detection: dict[str, Any]) -> list[str]:
    lines = ["", "## Boxes found", "", f"Pages with every region's box at IoU ≥ 0.85: {fmt(detection['page_hit_rate'])}.",
             "", "| region | pages | found | IoU ≥ 0.85 | mean IoU |", "|---|---:|---:|---:|---:|"]
    for region, row in detection["per_region"].items():
        lines.append(f"| {region} | {row['pages']} | {fmt(row['found'])} | {fmt(row['hit_rate'])} | {fmt(row['mean_iou'])} |")
    return lines


def pages_markdown(report: dict[str, Any]) -> str:
    """report.md of `evaluate --pages`: detected vs true boxes per document and per region."""
    detected, oracle = report[DETECTED], report.get(ORACLE)
    cost = report.get("detection_cost", {})
    lines = [f"# Page evaluation of `{report['model']}`", "",
             f"Data `{report['data']}`, split `{report['split']}`: {report['pages']} pages; regions "
             f"{', '.join(report['regions'])} found by `{report['layout_model']}`, each crop widened by "
             f"{report['margin']} px, read with its region's prompt and merged into the document. "
             "Oracle: the same with the manifest's true boxes. Cost of detection = detected − oracle.", "",
             "## Per document", "", "| metric | detected boxes | true boxes (oracle) | cost of detection |",
             "|---|---:|---:|---:|"]
    for key, label in METRICS:
        lines.append(f"| {label} | {fmt(detected['overall'][key])} | {fmt(oracle['overall'][key]) if oracle else 'not run'} "
                     f"| {signed(difference(detected['overall'][key], oracle['overall'][key])) if oracle else '–'} |")
    lines += ["", "Per document: exact match is the share of pages with every field right, validation is checked on "
              "the merged document, TEDS is the line-items table's, JSON validity means some region gave JSON (per "
              "region below), character accuracy compares the merged document's JSON with the label's.", "",
              "## Per region", "", "| region | pages | not detected | field acc detected | field acc oracle | cost "
              "| JSON detected |", "|---|---:|---:|---:|---:|---:|---:|"]
    for region, row in detected["per_region"].items():
        other = oracle["per_region"].get(region, {}) if oracle else {}
        lines.append(f"| {region} | {row['records']} | {detected['regions_not_detected'][region]} "
                     f"| {fmt(row['field_accuracy'])} | {fmt(other.get('field_accuracy'))} "
                     f"| {signed(cost.get('per_region_field_accuracy', {}).get(region))} | {fmt(row['json_validity_rate'])} |")
    lines += _detection_lines(report["detection"])
    lines += ["", "## Per field (detected boxes)", "", "| field | detected | oracle |", "|---|---:|---:|"]
    for name, row in detected["per_field"].items():
        other = oracle["per_field"].get(name, {}).get("accuracy") if oracle else None
        lines.append(f"| {name} | {fmt(row['accuracy'])} | {fmt(other)} |")
    lines += ["", "Full reports: [detected/report.md](detected/report.md)"
              + (", [oracle/report.md](oracle/report.md)." if oracle else ".")]
    return "\n".join(lines) + "\n"


def pages_comparison_markdown(result: dict[str, Any]) -> str:
    """comparison.md of `compare --pages`."""
    lines = [f"# Pages: `{result['model']}` vs base `{result['base']}`", "",
             f"Data `{result['data']}`, split `{result['split']}`: the same {result['pages']} pages for both models, "
             f"regions {', '.join(result['regions'])} found once by `{result['layout_model']}` (margin {result['margin']} "
             "px). Delta = model − base, 95 % interval from a paired bootstrap over pages.", ""]
    for name, title in ((DETECTED, "Detected boxes"), (ORACLE, "True boxes (oracle)")):
        if name not in result:
            continue
        lines += [f"## {title}", "", "| metric | base | model | delta | 95 % CI |", "|---|---:|---:|---:|---|"]
        for key, label in METRICS:
            d = result[name]["deltas"][key]
            interval = "–" if d["ci_low"] is None else f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
            lines.append(f"| {label} | {fmt(d['base'])} | {fmt(d['model'])} | {signed(d['delta'])} | {interval} |")
        lines += ["", "| region | pages | field acc base | field acc model |", "|---|---:|---:|---:|"]
        for region, row in result[name]["per_region"].items():
            lines.append(f"| {region} | {row['records']} | {fmt(row['base']['field_accuracy'])} "
                         f"| {fmt(row['model']['field_accuracy'])} |")
        lines.append("")
    if "detection_cost" in result:
        cost = result["detection_cost"]
        lines += [f"Cost of detection (field accuracy, detected − oracle): base {signed(cost['base'])}, "
                  f"model {signed(cost['model'])}."]
    lines += _detection_lines(result["detection"])
    return "\n".join(lines) + "\n"


def pages_table(report: dict[str, Any]) -> str:
    """The console table of `evaluate --pages`: each metric with detected and true boxes, and the cost."""
    oracle = report.get(ORACLE)
    lines = [f"{report['pages']} pages, regions {', '.join(report['regions'])}",
             f"{'':<26}{'detected':>10}{'oracle':>10}{'cost':>10}"]
    for key, label in METRICS:
        value, other = report[DETECTED]["overall"][key], oracle["overall"][key] if oracle else None
        if value is not None:
            lines.append(f"{label:<26}{fmt(value):>10}{fmt(other):>10}{signed(difference(value, other)):>10}")
    return "\n".join(lines)


def pages_comparison_table(result: dict[str, Any]) -> str:
    """The console table of `compare --pages` (detected boxes, and the oracle's deltas)."""
    lines = [f"{result['pages']} pages, regions {', '.join(result['regions'])}"]
    for name in (DETECTED, ORACLE):
        for key, label in METRICS if name in result else ():
            d = result[name]["deltas"][key]
            if d["delta"] is not None:
                lines.append(f"{name:<9}{label:<26} base {d['base']:.4f}  model {d['model']:.4f}  delta {d['delta']:+.4f} "
                             f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
    return "\n".join(lines)
