"""The generated leaderboard in a real browser: headless Chromium (Debian's package, which
`make test` installs where it can) driven by Playwright, the page opened from disk.

Checks: the tables render, sorting and the filters work, a method named like a script shows as
text and runs nothing, no request leaves the page, the console stays free of errors, and the
page fits a 420 px wide screen (its tables scroll inside their box). Screenshots of the top of
the page and of a task section at 1400 and 420 px are saved under leaderboard/site/
(screenshot.png is the whole page at 1400 px).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from benchmark.examples import image_pairs
from leaderboard.report import build_report
from tests.conftest import PROJECT
from tests.test_leaderboard import EVIL, _record

CHROMIUM = (
    os.environ.get("INVBENCH_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
)
playwright = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not installed (pip install playwright, or make test)",
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed: apt-get install chromium (make test "
    "does it where it may), or set INVBENCH_CHROMIUM to its path",
)
SCREENSHOT = PROJECT / "leaderboard" / "site" / "screenshot.png"
# Flags for a sandboxed, offline headless run (no background requests of Chromium's own).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    folder = root / "results" / "mini" / "digits"
    folder.mkdir(parents=True)
    example = image_pairs(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), [0, 1])
    records = [
        _record("gmi", "none", 0, 0.6, kind="none", examples=example),
        _record("gmi", "tl", 0, 0.3, utility=0.8, examples=example),
        _record("kedmi", "none", 0, 0.9, kind="none"),
        _record("kedmi", "tl", 0, 0.5, utility=0.8),
        _record(EVIL, "none", 0, 0.1, access="none", kind="none"),
        _record(EVIL, "tl", 0, None, access="none", status="failed"),
        _record(EVIL, "rounding", 0, 0.2, access="none", kind="output"),
    ]
    for i, record in enumerate(records):
        (folder / f"record{i}.json").write_text(json.dumps(record))
    return build_report(root / "results", root / "site")


def test_the_page_renders_sorts_filters_escapes_and_stays_offline(site):
    requests, problems, dialogs = [], [], []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda request: requests.append(request.url))
        page.on(
            "console", lambda message: message.type == "error" and problems.append(message.text)
        )
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(site.as_uri())
        page.wait_for_load_state("load")

        # tables render: 3 attacks in the heat map, 7 cells (6 ok + 1 failed) in the full table
        assert page.locator("table.matrix tbody tr[data-access]").count() == 3
        full = page.locator("table.full tbody tr")
        assert full.count() == 7
        assert page.locator("table.matrix td.failed").count() == 1
        # one point per defense in the chart (matplotlib's markers), the floor drawn
        assert page.locator('figure.privacy-utility svg g[id^="points-"] use').count() == 3
        assert "floor" in page.locator("figure.privacy-utility").inner_text()
        # the summary: kedmi is the strongest attack without a defense (0.9), tl lowers it most
        # (0.5) at a utility cost of 0.9 - 0.8
        summary = page.locator("table.summary tbody tr").first.inner_text()
        assert "kedmi: 0.9" in summary and "tl: 0.5" in summary and "0.1" in summary
        assert page.locator("table.examples img").count() == 2

        # the script-like name is shown as text, and nothing ran
        assert page.get_by_text(EVIL, exact=True).first.is_visible()
        assert dialogs == []

        # sorting: the attack_acc@1 column, ascending then descending
        def column(index: int) -> list[str]:
            return [full.nth(i).locator("td").nth(index).inner_text() for i in range(full.count())]

        header = page.locator("table.full thead th").filter(has_text="attack_acc@1")
        index = page.locator("table.full thead th").all_inner_texts().index(header.inner_text())
        header.click()
        values = [float(v) for v in column(index) if v.strip() not in ("–", "")]
        assert values == sorted(values) and len(values) == 6
        header.click()
        values = [float(v) for v in column(index) if v.strip() not in ("–", "")]
        assert values == sorted(values, reverse=True)

        # filters: access level, defense kind, task
        page.select_option("#filter-access", "none")
        visible = [
            r for r in page.locator("table.matrix tbody tr[data-access]").all() if r.is_visible()
        ]
        assert len(visible) == 1 and EVIL in visible[0].inner_text()
        page.select_option("#filter-access", "")
        page.select_option("#filter-kind", "train")
        headers = [
            h.inner_text()
            for h in page.locator("table.matrix thead th[data-kind]").all()
            if h.is_visible()
        ]
        assert [h.split("\n")[0] for h in headers] == ["tl"]
        page.select_option("#filter-kind", "")
        page.select_option("#filter-task", "mini/digits")
        assert page.locator("section.task").first.is_visible()
        page.select_option("#filter-task", "")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        widths = {}
        for width in (1400, 420):
            page.set_viewport_size({"width": width, "height": 900})
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(SCREENSHOT.with_name(f"screenshot-top-{width}.png")))
            page.locator("section.task").first.scroll_into_view_if_needed()
            page.locator("section.task h2").first.evaluate("h => h.scrollIntoView()")
            page.screenshot(path=str(SCREENSHOT.with_name(f"screenshot-task-{width}.png")))
            widths[width] = page.evaluate("document.documentElement.scrollWidth")
        browser.close()

    # the page itself never scrolls sideways, at 420 px neither: wide tables scroll in their box
    assert all(scrolled <= width for width, scrolled in widths.items()), widths

    assert problems == [], problems
    assert requests and all(url == site.as_uri() or url.startswith("data:") for url in requests), (
        requests
    )
    assert SCREENSHOT.stat().st_size > 10_000
