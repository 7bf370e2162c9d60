"""Layout composer (composer.py): composed families render five disjoint region boxes with their
spans inside, distractors outside, deterministically and with variety; the named layouts and the
default generator output stay exactly as they were; `generate --composed-share` records boxes
and page sizes that match the pages.

Run: .venv/bin/python -m pytest -q tests/test_composer.py
"""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest
from PIL import Image

from finscribe.data.schema import REGIONS
from finscribe.synthetic.composer import COMPOSED_FAMILIES, HELD_OUT_FAMILIES
from finscribe.synthetic.export import generate_dataset
from finscribe.synthetic.generator import generate_invoice, random_invoice_spec
from finscribe.synthetic.renderer import LAYOUTS, render_invoice


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def _page(family: str, seed: int, i: int, dpi: int = 100):
    spec = random_invoice_spec(seed, i)
    invoice = generate_invoice(spec.num_items, spec.currency, spec.seed, spec.locale)
    return invoice, render_invoice(invoice, family, dpi=dpi, seed=spec.seed)


def _digest(page) -> str:
    blob = page.image.tobytes() + json.dumps(page.boxes, sort_keys=True).encode() + repr(page.spans).encode()
    return hashlib.sha256(blob).hexdigest()


# Hashes of the named layouts' pages (pixels + boxes) at HEAD before the composer existed: the
# reader's pretraining (page_samples) must stay bit-reproducible, so these must never change.
_NAMED_PINS = {
    "classic": "7367fd446a64899a",
    "two_column": "d43d107c17c3f097",
    "boxed_table": "e54446fe715d9707",
    "minimal": "5aebe8a0e70e0e85",
    "right_totals": "c93a5d786fafaafc",
    "compact": "b7791eb045d2e800",
}


def test_named_layouts_and_specs_are_unchanged():
    assert LAYOUTS == tuple(_NAMED_PINS) and not set(LAYOUTS) & set(COMPOSED_FAMILIES)
    for k, layout in enumerate(LAYOUTS):
        spec = random_invoice_spec(11, k)
        invoice = generate_invoice(spec.num_items, spec.currency, spec.seed, spec.locale)
        page = render_invoice(invoice, layout, dpi=50, seed=spec.seed)
        blob = page.image.tobytes() + json.dumps(page.boxes, sort_keys=True).encode()
        assert hashlib.sha256(blob).hexdigest()[:16] == _NAMED_PINS[layout], layout
    specs = repr([random_invoice_spec(5, i) for i in range(200)]).encode()
    assert hashlib.sha256(specs).hexdigest()[:16] == "bf7bc4ee9e3df8bb"  # default layouts: the named six


@pytest.mark.parametrize("family", COMPOSED_FAMILIES)
def test_family_boxes_disjoint_inside_page_with_spans_in_place(family):
    sizes = set()
    for i in range(6):
        invoice, page = _page(family, 3, i)
        full = (0, 0, *page.image.size)
        assert set(page.boxes) == set(REGIONS) and page.layout == family
        for region, box in page.boxes.items():
            assert box[0] < box[2] and box[1] < box[3] and _inside(box, full), (family, i, region, box)
        for (ra, a), (rb, b) in itertools.combinations(page.boxes.items(), 2):
            assert not _overlap(a, b), f"{family} {i}: {ra} {a} overlaps {rb} {b}"
        for span in page.spans:
            if span.region is not None:
                assert _inside(span.box, page.boxes[span.region]), (family, i, span)
            else:  # title, logo letters, distractors, footer: outside every region box
                hit = [r for r, box in page.boxes.items() if _overlap(span.box, box)]
                assert not hit, (family, i, span, hit)
        for a, b in itertools.combinations(page.spans, 2):
            assert not _overlap(a.box, b.box), f"{family} {i}: text over text {a} {b}"
        texts = " ".join(s.text for s in page.spans if s.region == "totals_section")
        assert page.spans and any(s.region == "line_items_table" for s in page.spans)
        assert invoice.to_label()["totals_section"]["total"]  # labels are the invoice's, as for named layouts
        assert texts
        sizes.add(page.page_size)
    assert sizes <= ({"Receipt80"} if family == "composed_receipt" else {"A4", "Letter"})


def test_receipt_is_80_mm_wide_and_as_tall_as_its_content():
    heights = set()
    for i in range(4):
        invoice, page = _page("composed_receipt", 8, i)
        assert page.image.width == round(80 / 25.4 * 100) and page.page_size == "Receipt80"
        lowest = max(s.box[3] for s in page.spans)
        assert lowest < page.image.height <= lowest + 120  # cut below the content, not an A4 page
        heights.add(page.image.height)
    assert len(heights) > 1


def test_distractors_are_drawn_and_carry_no_region():
    outside: list[str] = []
    for family in COMPOSED_FAMILIES:
        for i in range(8):
            outside += [s.text for s in _page(family, 4, i, dpi=60)[1].spans if s.region is None]
    joined = " ".join(outside)
    assert "IBAN" in joined  # bank details
    assert any(word in outside for word in ("PAID", "COPY", "ORIGINAL", "RECEIVED", "APPROVED", "BEZAHLT",
                                            "KOPIE", "PAYÉ", "COPIE", "PAGADO", "COPIA", "PAGATO", "BETAALD"))


@pytest.mark.parametrize("family", COMPOSED_FAMILIES)
def test_family_is_deterministic_per_seed(family):
    assert _digest(_page(family, 6, 1)[1]) == _digest(_page(family, 6, 1)[1])
    assert _digest(_page(family, 6, 1)[1]) != _digest(_page(family, 6, 2)[1])


def _order(page) -> tuple[str, ...]:
    """Regions in reading order (rows top-down, then left to right)."""
    return tuple(sorted(REGIONS, key=lambda r: (page.boxes[r][1] // 40, page.boxes[r][0])))


def test_families_vary_block_order_position_and_page_size():
    orders, vendor_sides, sizes = set(), set(), set()
    for seed in range(20):
        invoice = generate_invoice(4, seed=seed)
        page = render_invoice(invoice, "composed_stack", dpi=50, seed=seed)
        orders.add(_order(page))
        sizes.add(page.page_size)
        vendor_sides.add(page.boxes["vendor_block"][0] > page.image.width // 3)
    assert len(orders) >= 5, orders
    assert sizes == {"A4", "Letter"} and vendor_sides == {True, False}
    sidebars = set()
    for seed in range(20):
        page = render_invoice(generate_invoice(4, seed=seed), "composed_columns", dpi=50, seed=seed)
        table = page.boxes["line_items_table"]
        sidebars.add("left" if table[0] > page.image.width // 4 else "right")
    assert sidebars == {"left", "right"}


def test_unknown_layout_names_both_kinds():
    with pytest.raises(ValueError, match="composed_stack"):
        render_invoice(generate_invoice(2, seed=1), "composed_nope")


def test_default_generate_has_no_composed_fields(tmp_path):
    manifest = json.loads(generate_dataset(3, tmp_path / "plain", seed=2, workers=1, degrade=0).read_text())
    assert "composed_share" not in manifest["config"] and manifest["config"]["held_out_layouts"] == ["minimal"]
    assert all(s["layout"] in LAYOUTS and "page_size" not in s for s in manifest["samples"])


def test_generate_with_composed_share_records_matching_boxes_and_sizes(tmp_path):
    out = tmp_path / "data"
    manifest = json.loads(generate_dataset(16, out, seed=5, workers=1, degrade=0, composed_share=0.7).read_text())
    samples = manifest["samples"]
    assert manifest["config"]["held_out_layouts"] == ["minimal", *HELD_OUT_FAMILIES]
    composed = [s for s in samples if s["layout"] in COMPOSED_FAMILIES]
    assert len(composed) >= 6 and any(s["layout"] in LAYOUTS for s in samples)
    for i, s in enumerate(samples):
        if s["layout"] in manifest["config"]["held_out_layouts"]:
            assert s["split"] == "test"
        with Image.open(out / s["page"]) as im:
            assert list(im.size) == s["size"]
        spec = random_invoice_spec(5, i)
        invoice = generate_invoice(spec.num_items, spec.currency, spec.seed, spec.locale)
        page = render_invoice(invoice, s["layout"], seed=spec.seed)  # the sample's own spec, re-rendered
        assert {r: list(b) for r, b in page.boxes.items()} == {r: s["regions"][r]["box"] for r in REGIONS}
        assert s["page_size"] == page.page_size
        assert json.loads((out / s["label"]).read_text()) == json.loads(json.dumps(invoice.to_label()))
    # Resuming with another share is refused, the same share resumes.
    with pytest.raises(ValueError, match="composed_share"):
        generate_dataset(16, out, seed=5, workers=1, degrade=0, composed_share=0.2)
    again = json.loads(generate_dataset(16, out, seed=5, workers=1, degrade=0, composed_share=0.7).read_text())
    assert again == manifest


def test_contact_sheet_shows_the_composed_families(tmp_path):
    from finscribe.synthetic.contact_sheet import main as sheet_main

    sizes = []
    for extra in ([], ["--composed", "1"]):
        out = tmp_path / f"sheet{len(extra)}.png"
        assert sheet_main(["--output", str(out), "--dpi", "40", "--thumb-width", "120", "--columns", "4", *extra]) == 0
        with Image.open(out) as sheet:
            sizes.append(sheet.size)
    # 7 tiles (6 layouts + a degraded page) fill 2 rows; 4 families more make a third row.
    assert sizes[0][0] == sizes[1][0] and sizes[1][1] > sizes[0][1] * 1.3


@pytest.mark.slow
def test_100_generated_invoices_per_family_keep_every_box_rule():
    """Every locale, item count and dpi of random_invoice_spec(1, i): boxes disjoint and inside the
    page, region spans inside their box, no-region spans outside every box, no text over text."""
    for i in range(100):
        spec = random_invoice_spec(1, i)
        invoice = generate_invoice(spec.num_items, spec.currency, spec.seed, spec.locale)
        for family in COMPOSED_FAMILIES:
            page = render_invoice(invoice, family, dpi=(72, 100, 150)[i % 3], seed=spec.seed)
            full = (0, 0, *page.image.size)
            assert all(_inside(box, full) for box in page.boxes.values()), (family, i)
            for (ra, a), (rb, b) in itertools.combinations(page.boxes.items(), 2):
                assert not _overlap(a, b), (family, i, ra, rb)
            for span in page.spans:
                if span.region is None:
                    assert not any(_overlap(span.box, box) for box in page.boxes.values()), (family, i, span)
                else:
                    assert _inside(span.box, page.boxes[span.region]), (family, i, span)
            for a, b in itertools.combinations(page.spans, 2):
                assert not _overlap(a.box, b.box), (family, i, a, b)
