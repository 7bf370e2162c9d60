"""The web page in real headless Chromium: upload a generated invoice, see its fields.

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

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
                       reason="chromium is not installed: run `bash scripts/install_browser.sh`"),
]


def test_upload_shows_page_boxes_fields_and_validation(request, tmp_path_factory, tmp_path):
    from playwright.sync_api import sync_playwright

    from finscribe.deploy.server import create_app
    from finscribe.deploy.service import PaddleOCRVLService
    from finscribe.deploy.uploads import UploadLimits
    from finscribe.inference import GenerationArgs

    model_dir = cached_overfit_model(request, tmp_path_factory)
    page_data = invoice_pages(4)[1]  # one of the overfit model's training invoices
    page_data["image"].save(tmp_path / "invoice.png")
    boxes = {"totals_section": page_data["boxes"]["totals_section"]}
    service = PaddleOCRVLService(GenerationArgs(model=str(model_dir), max_new_tokens=96, device="cpu"))
    expected = service.extract(page_data["image"], boxes)
    assert expected["document"], "the overfit model should answer with JSON"

    with RunningServer(create_app(service, UploadLimits())) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(url + "/")
            page.set_input_files("#file-input", str(tmp_path / "invoice.png"))
            page.click("summary")
            page.fill("#boxes-input", json.dumps(boxes))
            page.click("#extract-button")
            page.wait_for_selector(".page .validation", timeout=120_000)
            status = page.inner_text("#status")
            assert status.startswith("Done"), status
            for name, value in expected["document"]["totals_section"].items():
                row = page.locator(f'tr[data-field="totals_section.{name}"] td.value')
                assert row.inner_text() == value
            verdict = page.locator(".page .validation")
            assert ("valid" in verdict.get_attribute("class").split()) == (not expected["violations"])
            assert page.locator(".region-box").count() == 1
            assert page.locator(".page-image").evaluate("img => img.naturalWidth") == page_data["image"].width
            assert "M parameters" in page.inner_text("#model-info")
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            browser.close()
