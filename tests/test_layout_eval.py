"""finscribe.eval.layout and benchmarks/layout.py: IoU hit rates, coverage of the renderer's text
lines and COCO mAP give the right figures on boxes whose answer is known."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from finscribe.data.schema import REGIONS
from finscribe.detection import PageRegions
from finscribe.eval.layout import box_scores, coco_map, coverage, iou

REPO = Path(__file__).resolve().parents[1]


def regions(boxes: dict, size=(1000, 1400)) -> PageRegions:
    return PageRegions(size=size, boxes=boxes, scores={r: 0.9 for r in boxes}, missing=tuple(r for r in REGIONS if r not in boxes))


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_box_scores_count_a_missing_region_as_a_miss():
    truth = {"vendor_block": (0, 0, 100, 100), "totals_section": (0, 200, 100, 300)}
    exact = box_scores([truth], [regions(dict(truth))])
    assert exact["page_hit_rate"] == 1.0 and exact["per_region"]["vendor_block"]["hit_rate"] == 1.0
    shifted = box_scores([truth, truth], [regions({"vendor_block": (0, 0, 100, 90), "totals_section": (0, 200, 100, 300)}),
                                          regions({"vendor_block": (0, 0, 100, 80)})])
    assert shifted["per_region"]["vendor_block"]["hit_rate"] == 0.5  # IoU 0.9 hits, 0.8 misses
    assert shifted["per_region"]["totals_section"] == {"pages": 2, "hit_rate": 0.5, "mean_iou": 0.5, "found": 0.5}
    assert shifted["page_hit_rate"] == 0.5 and shifted["region_hit_rate"] == 0.5


def test_coco_map_is_one_for_the_true_boxes_and_zero_without_detections():
    truth = [{"vendor_block": (0, 0, 100, 100), "client_info": (200, 0, 300, 100)}]
    assert coco_map(truth, [[(r, 1.0, b) for r, b in truth[0].items()]])["mAP"] == pytest.approx(1.0)
    assert coco_map(truth, [[]]) == {"mAP": 0.0, "AP50": 0.0, "AP75": 0.0}


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(REPO / "benchmarks" / "layout.py"))


def test_benchmark_pages_have_every_text_line_inside_the_true_boxes(bench):
    config = bench["LayoutBenchConfig"](pages=4, degrade=0.5, seed=3, dpi=100)
    pages = bench["render_pages"](config)
    assert [p["layout"] for p in pages] == ["classic", "two_column", "boxed_table", "minimal"]
    assert any(p["degraded"] for p in pages) and pages[3]["held_out"]
    truth = [regions({r: tuple(b) for r, b in p["boxes"].items()}, p["image"].size) for p in pages]
    assert coverage([p["lines"] for p in pages], truth, margin=0)["page_coverage"] == 1.0
    assert all(len(p["lines"]) == 5 for p in pages)
    # A crop cut 15 px short on the right loses lines: coverage notices.
    short = [regions({r: (b[0], b[1], b[2] - 15, b[3]) for r, b in t.boxes.items()}, t.size) for t in truth]
    assert coverage([p["lines"] for p in pages], short, margin=0)["page_coverage"] < 1.0


def test_benchmark_report_prints_each_figure_beside_its_goal(bench):
    per_region = {r: {"hit_rate": 0.5, "mean_iou": 0.8, "coverage": 0.9} for r in REGIONS}
    part = {"pages": 10, "page_hit_rate": 0.96, "page_hit_rate_ci": (0.6, 0.99), "page_coverage": 1.0, "page_coverage_ci": (0.7, 1.0),
            "per_region": per_region}
    text = bench["report"]({"all": part, "held_out_layouts": part, "by_layout": {"classic": part},
                            "speed_ms": {"p50_wall": 150.0, "p50_cpu": 80.0}})
    assert "| every region IoU >= 0.85, all pages | >= 97% | 96.0% [0.6, 0.99] of 10 | NOT met |" in text
    assert "| every region IoU >= 0.85, held-out layouts | >= 95% | 96.0% [0.6, 0.99] of 10 | met |" in text
    assert "150 ms wall, 80 ms CPU | met |" in text
