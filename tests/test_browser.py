"""The web page in real headless Chromium: upload a generated invoice, see its boxes and fields,
edit the boxes with the mouse, extract again.

Needs Debian's chromium (`bash scripts/install_browser.sh`); skipped with that reason without it.
Playwright drives the system browser, so no browser download is needed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from deploy_helpers import RunningServer, cached_overfit_model, invoice_pages

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1300, "height": 1700}  # tall enough to hold a whole page: the mouse works on what is shown

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
                       reason="chromium is not installed: run `bash scripts/install_browser.sh`"),
]


class Browser:
    """One Chromium page on the running server, with the helpers the tests share."""

    def __init__(self, pw, url: str):
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        self.page = self.browser.new_page(viewport=VIEWPORT)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.goto(url + "/")
        self.sent: list[bytes] = []  # the body of every extract request

        def keep(route):
            self.sent.append(route.request.post_data_buffer or b"")
            route.continue_()

        self.page.route("**/v1/extract", keep)

    def extract(self, selector: str) -> dict:
        """Click `selector` (Extract or Extract again) → the answer's JSON, once the page shows it."""
        with self.page.expect_response("**/v1/extract", timeout=180_000) as answer:
            self.page.click(selector)
        self.page.wait_for_function("document.querySelector('#status').textContent.startsWith('Done')", timeout=180_000)
        return answer.value.json()

    def sent_boxes(self) -> list | None:
        """The `boxes` form field of the last request (None when it had none)."""
        marker = b'name="boxes"\r\n\r\n'
        body = self.sent[-1]
        if marker not in body:
            return None
        return json.loads(body.split(marker, 1)[1].split(b"\r\n", 1)[0])

    def box(self, page_number: int, region: str) -> list[int]:
        return [int(v) for v in self.page.locator(self._box(page_number, region)).get_attribute("data-box").split(",")]

    @staticmethod
    def _box(page_number: int, region: str) -> str:
        return f'.page[data-page="{page_number}"] g.box[data-region="{region}"]'

    def to_screen(self, page_number: int, x: float, y: float, size: tuple[int, int]) -> tuple[float, float]:
        frame = self.page.locator(f'.page[data-page="{page_number}"] svg.box-layer').bounding_box()
        return frame["x"] + x * frame["width"] / size[0], frame["y"] + y * frame["height"] / size[1]

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        self.page.mouse.move(*start)
        self.page.mouse.down()
        self.page.mouse.move(*end, steps=8)
        self.page.mouse.up()

    def close(self) -> None:
        self.browser.close()


@pytest.fixture(scope="module")
def detecting_service(tiny_detector_dir):
    """The committed tiny reader + the untrained tiny detector at threshold 0 (it always keeps its best box)."""
    from finscribe.deploy.detector import PageDetector
    from finscribe.deploy.service import PaddleOCRVLService
    from finscribe.inference import GenerationArgs
    from finscribe.quickstart_config import TINY_READER

    return PaddleOCRVLService(GenerationArgs(model=str(TINY_READER), max_new_tokens=12, batch_size=8, device="cpu"),
                              detector=PageDetector.load(tiny_detector_dir, threshold=0.0))


def test_detected_boxes_are_drawn_then_moved_added_deleted_and_extracted_again(detecting_service, tmp_path):
    from playwright.sync_api import sync_playwright

    from finscribe.data.schema import REGIONS
    from finscribe.deploy.server import create_app
    from finscribe.deploy.uploads import UploadLimits

    invoice = invoice_pages(1, dpi=100)[0]["image"]
    invoice.save(tmp_path / "invoice.png")
    with RunningServer(create_app(detecting_service, UploadLimits())) as url, sync_playwright() as pw:
        browser = Browser(pw, url)
        page = browser.page
        try:
            page.set_input_files("#file-input", str(tmp_path / "invoice.png"))
            first = browser.extract("#extract-button")
            assert browser.sent_boxes() is None  # sent without boxes: the detector finds them
            [answer] = first["pages"]
            assert answer["boxes_from"] == "detector" and answer["regions"]
            drawn = page.locator(".page g.box")
            assert drawn.count() == len(answer["regions"])
            for region, info in answer["regions"].items():  # every read box drawn where it is, labelled with its score
                assert browser.box(1, region) == info["box"]
                label = page.locator(f'{browser._box(1, region)} text.label').text_content()
                assert label == f"{region} {info['score']:.2f}"
            assert "Not found by the detector" in page.inner_text(".box-tools") or not answer["missing"]
            page.screenshot(path=str(tmp_path / "detected.png"), full_page=True)

            # Drag the first box up and to the left by 60 x 40 screen pixels.
            moved_region = next(iter(answer["regions"]))
            before = browser.box(1, moved_region)
            body = page.locator(f"{browser._box(1, moved_region)} rect.body").bounding_box()
            start = (body["x"] + body["width"] / 2, body["y"] + body["height"] / 2)
            browser.drag(start, (start[0] - 60, start[1] - 40))
            moved = browser.box(1, moved_region)
            assert moved[0] < before[0] and moved[1] < before[1]  # moved up-left ...
            assert [moved[2] - moved[0], moved[3] - moved[1]] == [before[2] - before[0], before[3] - before[1]]  # ... same size
            assert f"{moved_region} (edited)" == page.locator(f"{browser._box(1, moved_region)} text.label").text_content()

            # Add two missing regions from the list, delete one of them again.
            absent = [r for r in REGIONS if r not in answer["regions"]]
            for region in absent[:2]:
                page.select_option('.page[data-page="1"] .add-box select', region)
                page.click('.page[data-page="1"] .add-box .add-button')
            assert drawn.count() == len(answer["regions"]) + len(absent[:2])
            if len(absent) >= 2:
                page.get_by_role("button", name=f"Delete the {absent[1]} box on page 1").click()
                assert page.locator(browser._box(1, absent[1])).count() == 0
            kept = {r: browser.box(1, r) for r in REGIONS if page.locator(browser._box(1, r)).count()}
            assert kept[moved_region] == moved and set(kept) == set(answer["regions"]) | set(absent[:1])

            second = browser.extract("#again-button")
            assert browser.sent_boxes() == [kept]  # the request carried the edited boxes, one map per page
            [again] = second["pages"]
            assert again["boxes_from"] == "sent" and {r: i["box"] for r, i in again["regions"].items()} == kept
            assert all(info["raw_text"] for info in again["regions"].values())  # every box was read
            assert browser.box(1, moved_region) == moved and page.locator(".page g.box").count() == len(kept)
            page.screenshot(path=str(tmp_path / "edited.png"), full_page=True)
            assert not browser.errors, browser.errors
        finally:
            browser.close()


def test_a_two_page_pdf_has_boxes_per_page(detecting_service, tmp_path):
    from playwright.sync_api import sync_playwright
    from test_uploads import pdf_bytes

    from finscribe.deploy.server import create_app
    from finscribe.deploy.uploads import UploadLimits

    (tmp_path / "two.pdf").write_bytes(pdf_bytes(2, size_pt=(300, 400)))
    with RunningServer(create_app(detecting_service, UploadLimits(pdf_dpi=100))) as url, sync_playwright() as pw:
        browser = Browser(pw, url)
        page = browser.page
        try:
            page.set_input_files("#file-input", str(tmp_path / "two.pdf"))
            first = browser.extract("#extract-button")
            assert [p["boxes_from"] for p in first["pages"]] == ["detector", "detector"]
            for number in (1, 2):
                assert page.locator(f'.page[data-page="{number}"] g.box').count() == len(first["pages"][number - 1]["regions"])
            # Page 1: delete every box (it is detected again); page 2: keep its boxes and add one.
            for region in first["pages"][0]["regions"]:
                page.get_by_role("button", name=f"Delete the {region} box on page 1").click()
            assert page.locator('.page[data-page="1"] g.box').count() == 0
            added = page.locator('.page[data-page="2"] .add-box select option').first.get_attribute("value")
            page.select_option('.page[data-page="2"] .add-box select', added)
            page.click('.page[data-page="2"] .add-box .add-button')
            page_two = {r: browser.box(2, r) for r in [*first["pages"][1]["regions"], added]}
            second = browser.extract("#again-button")
            assert browser.sent_boxes() == [None, page_two]
            assert [p["boxes_from"] for p in second["pages"]] == ["detector", "sent"]
            assert {r: i["box"] for r, i in second["pages"][1]["regions"].items()} == page_two
            assert not browser.errors, browser.errors
        finally:
            browser.close()


def test_a_box_placed_by_hand_shows_its_fields_and_validation(request, tmp_path_factory, tmp_path):
    """No detector on this server: the page is read whole; the user adds a totals box, drags its
    corners onto the totals block, extracts again and sees the overfit model's fields."""
    from playwright.sync_api import sync_playwright

    from finscribe.deploy.server import create_app
    from finscribe.deploy.service import PaddleOCRVLService
    from finscribe.deploy.uploads import UploadLimits
    from finscribe.inference import GenerationArgs

    model_dir = cached_overfit_model(request, tmp_path_factory)
    page_data = invoice_pages(4)[1]  # one of the overfit model's training invoices
    page_data["image"].save(tmp_path / "invoice.png")
    size = page_data["image"].size
    target = page_data["boxes"]["totals_section"]
    service = PaddleOCRVLService(GenerationArgs(model=str(model_dir), max_new_tokens=96, device="cpu"))

    with RunningServer(create_app(service, UploadLimits())) as url, sync_playwright() as pw:
        browser = Browser(pw, url)
        page = browser.page
        try:
            page.set_input_files("#file-input", str(tmp_path / "invoice.png"))
            first = browser.extract("#extract-button")
            assert first["pages"][0]["boxes_from"] == "page" and page.locator("g.box").count() == 0
            assert "no region detector" in page.inner_text("#model-info")
            page.select_option('.page[data-page="1"] .add-box select', "totals_section")
            page.click('.page[data-page="1"] .add-box .add-button')
            # Shrink the new box from its south-east corner, move it onto the block, stretch it to the block's corner.
            x0, y0, x1, y1 = browser.box(1, "totals_section")
            browser.drag(browser.to_screen(1, x1, y1, size), browser.to_screen(1, x0 + 20, y0 + 20, size))
            x0, y0, x1, y1 = browser.box(1, "totals_section")
            browser.drag(browser.to_screen(1, (x0 + x1) / 2, (y0 + y1) / 2, size),
                         browser.to_screen(1, target[0] + (x1 - x0) / 2, target[1] + (y1 - y0) / 2, size))
            x0, y0, x1, y1 = browser.box(1, "totals_section")
            browser.drag(browser.to_screen(1, x1, y1, size), browser.to_screen(1, target[2], target[3], size))
            placed = browser.box(1, "totals_section")
            assert all(abs(a - b) <= 3 for a, b in zip(placed, target)), (placed, target)

            second = browser.extract("#again-button")
            assert browser.sent_boxes() == [{"totals_section": placed}]
            expected = service.extract(page_data["image"], {"totals_section": placed})
            assert expected["document"], "the overfit model should answer with JSON"
            assert second["pages"][0]["document"] == expected["document"]
            for name, value in expected["document"]["totals_section"].items():
                row = page.locator(f'tr[data-field="totals_section.{name}"] td.value')
                assert row.inner_text() == value
            verdict = page.locator(".page .validation")
            assert ("valid" in verdict.get_attribute("class").split()) == (not expected["violations"])
            assert page.locator(".page-image").evaluate("img => img.naturalWidth") == size[0]
            assert "M parameters" in page.inner_text("#model-info")
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            assert not browser.errors, browser.errors
        finally:
            browser.close()
