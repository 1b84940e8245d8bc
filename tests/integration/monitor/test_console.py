"""The ops console in a real headless browser (Debian's Chromium, driven by Playwright) against
a monitor that watches real traffic on the real platform: the figures and tables come from what
it saw, the admin buttons act (and refuse without a key), and a screenshot is inspected."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from fraudstream_cli.platform.debian import ensure_debian_package
from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
from fraudstream_common.topics import Topic
from tests.integration.monitor.conftest import Watched, drifting_traffic, overview, unranked_frauds_in_hour_0
from tests.platform import drain

pytestmark = pytest.mark.integration

# Without the background-networking flags Chromium keeps calling Google's hosts, which this
# machine's closed network refuses.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHART_BLUE = (0x3F, 0xA7, 0xFF)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = ensure_debian_package("chromium", "chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def share_of_colour(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 40) -> float:
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    close = np.all(np.abs(pixels - np.asarray(colour)) <= tolerance, axis=-1)
    return float(close.mean())


def test_the_console_shows_what_the_monitor_saw_and_its_admin_buttons_act(browser: Browser, watched: Watched) -> None:
    rng = np.random.default_rng(5)
    watched.send(Topic.PREDICTIONS, [p.SerializeToString() for p in drifting_traffic(watched, rng)])
    watched.send(Topic.LABELS, unranked_frauds_in_hour_0(rng))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        document = overview(watched.monitor)
        # The alerts' request goes out after the 2 s debounce; then the loop cools down for an
        # hour, a state the page can be asked for without racing the debounce.
        if any(v["quality"] for v in document["versions"]) and document["alerts"] and document["requests"]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the monitor did not judge drift and quality and ask for a model in 90 s")

    page: Page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(watched.monitor.url)

    expect(page.locator("#champion")).to_have_text("champion 2")
    expect(page.locator("#loop-state")).to_have_text("loop cooling down")
    throughput = float(page.locator("#throughput").inner_text())
    assert throughput > 0
    assert float(page.locator("#latency-p99").inner_text()) >= float(page.locator("#latency-p50").inner_text()) > 0
    amount_row = page.locator("#drift-body tr", has_text="tx_amount")
    expect(amount_row.locator("td.hot")).to_have_count(1)  # its PSI is past the threshold, in red
    windows = page.locator("#quality-body tbody tr")
    expect(windows).to_have_count(2)  # hours 0 and 1 matured, latest first
    expect(windows.nth(1).locator("td").nth(3)).to_have_text("20")  # hour 0's frauds
    expect(windows.nth(0).locator("td").nth(3)).to_have_text("0")
    expect(windows.nth(0).locator("td").nth(4)).to_have_text("\u2013")  # no fraud, no average precision: a dash
    expect(page.locator("#models-body tbody tr", has_text="champion")).to_contain_text("2")
    expect(page.locator("#alerts-body")).to_contain_text("tx_amount")
    expect(page.locator("#alerts-body")).to_contain_text("average_precision")
    expect(page.locator("#alerts-body")).to_contain_text("holdout average precision")  # the evidence, in words
    expect(page.locator("#retrains-body")).to_contain_text("drift")
    # A request is dated by its evidence (event time), as `fraudstream watch` dates it.
    evidence_until = datetime.fromtimestamp(document["requests"][0]["evidence_until"], UTC)
    first_request = page.locator("#retrains-body table").first.locator("tbody tr").first
    expect(first_request.locator("td").first).to_have_text(evidence_until.strftime("%Y-%m-%d %H:%M"))

    # Without a key the admin buttons are refused; with the admin key they act.
    page.click("#pause")
    expect(page.locator("#admin-status")).to_contain_text("refused (401)")
    page.fill("#admin-key", watched.admin_key)
    page.click("#pause")
    expect(page.locator("#admin-status")).to_contain_text("pause: done")
    expect(page.locator("#loop-state")).to_have_text("loop paused")
    page.click("#force-retrain")
    expect(page.locator("#admin-status")).to_contain_text("retrain: done")
    requests = [RetrainRequest.FromString(r.value) for r in drain(watched.topics(Topic.RETRAIN_REQUESTS), expected=2)]
    assert requests[-1].force
    assert requests[-1].requested_by.startswith("it-admin (key:")
    # Both acts in the audit log's table, newest first, by the key's name.
    expect(page.locator("#audit-body tbody tr").first).to_contain_text("retrain forced")
    expect(page.locator("#audit-body")).to_contain_text("loop paused")
    expect(page.locator("#audit-body")).to_contain_text("it-admin (key:")

    png = page.screenshot(full_page=True)
    (watched.monitor.log_dir / "console.png").write_bytes(png)
    if keep := os.environ.get("FRAUDSTREAM_CONSOLE_SCREENSHOT"):  # `make screenshot`: the README's
        Path(keep).write_bytes(png)
    shot = Image.open(io.BytesIO(png))
    assert shot.width == 1400
    assert shot.height >= 1100
    chart = Image.open(io.BytesIO(page.locator("#throughput-chart").screenshot()))
    assert share_of_colour(chart, CHART_BLUE) > 0.002, "the throughput line is not drawn"
    assert share_of_colour(shot, (0x0F, 0x17, 0x20), tolerance=4) > 0.2, "the page background is not the console's"
    page.close()
    assert overview(watched.monitor)["paused"] is True
