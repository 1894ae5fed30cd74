"""The page ``hcqw timeline`` writes, opened in headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium): no console error, bars where the run's hold and exec events put them, and a tooltip
naming node, user and times when the pointer is on a bar.

The run is real (two tiny hybrid loops, split, on the machine-local qsim device); the expected geometry
comes from its metrics log's JSON lines and the page's own time axis, not from hcqw.timeline.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hcqw.cli import main as hcqw_main
from hcqw.device import LocalDevice
from hcqw.embedded import run_split
from tests.timeline.timelines import make_workflows

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PX = 1.5  # tolerance of a bar's position and width: the axis is read from its tick labels' glyph boxes


@pytest.fixture(scope="module")
def browser():
    from hcqw.lab.errors import LabError
    from hcqw.lab.packages import ensure_packages

    try:
        ensure_packages(["chromium", "chromium-driver"])
    except LabError as e:
        if os.geteuid() != 0:
            pytest.skip(f"needs Debian's chromium and chromium-driver: {e}")
        raise
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A real split run of two workflows (3 iterations each), its page, and its events as logged."""
    base = tmp_path_factory.mktemp("timeline-browser")
    run_split(make_workflows(base / "run"), LocalDevice("qsim", directory=base / "device"))
    assert hcqw_main(["timeline", str(base / "run"), "--out", str(base), "--name", "t", "--format", "html"]) == 0
    events = [json.loads(line) for path in sorted((base / "run").rglob("qpu.jsonl"))
              for line in path.read_text().splitlines()]
    return base / "t.html", events


# Every bar (an element with a tooltip) and every text of the chart's first svg, with their boxes.
READ_CHART = """
const svg = document.querySelector("svg");
const box = e => { const r = e.getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width, h: r.height}; };
return {
  bars: [...svg.querySelectorAll("[data-tip]")].map(e => Object.assign(box(e),
          {kind: e.dataset.kind, node: e.dataset.node || "", tag: e.tagName})),
  texts: [...svg.querySelectorAll("text")].map(e => Object.assign(box(e),
          {text: e.textContent, anchor: e.getAttribute("text-anchor")})),
};
"""


def _axis(texts: list[dict]) -> tuple[float, float]:
    """(px of t=0, px per second) from the axis' numbered tick labels (centred on their time)."""
    ticks = []
    for t in texts:
        try:
            ticks.append((float(t["text"]), t["x"] + t["w"] / 2))
        except ValueError:
            continue
    (t_first, x_first), (t_last, x_last) = min(ticks), max(ticks)
    assert t_first == 0 and t_last > 0, ticks
    return x_first, (x_last - x_first) / t_last


def _lane_rows(texts: list[dict]) -> dict[str, float]:
    """Lane name -> the vertical centre of its row (the labels right-aligned left of the chart)."""
    return {t["text"]: t["y"] + t["h"] / 2 for t in texts if t["anchor"] == "end" and t["text"].strip() != "s"}


def test_the_page_renders_without_console_errors(browser, page):
    browser.get(page[0].as_uri())
    assert browser.find_element("css selector", "h1").text == "QPU timeline"
    assert len(browser.find_elements("css selector", "svg")) >= 2  # the run's chart and the legend
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []


def test_bars_sit_where_the_runs_hold_and_exec_intervals_put_them(browser, page):
    path, events = page
    browser.get(path.as_uri())
    chart = browser.execute_script(READ_CHART)
    origin, scale = _axis(chart["texts"])
    t0 = min(e["start"] for e in events)
    rows = _lane_rows(chart["texts"])
    assert set(rows) == {"QPU", "w0", "w1"}
    intervals = [e for e in events if e["kind"] in ("hold", "exec")]
    assert {e["kind"] for e in intervals} == {"hold", "exec"} and len(intervals) >= 12  # 6 quantum nodes

    unmatched = [b for b in chart["bars"] if b["kind"] in ("hold", "exec")]
    for e in intervals:
        x, w = origin + (e["start"] - t0) * scale, (e["end"] - e["start"]) * scale
        node = f"{e['workflow']}/{e['node']}"
        mine = [b for b in unmatched if b["kind"] == e["kind"] and b["node"] == node
                and abs(b["x"] - x) <= PX and abs(b["w"] - max(w, 0.5)) <= PX]
        # One bar on the device's lane and one on the workflow's, each in its row.
        lanes = sorted(min(rows, key=lambda lane: abs(rows[lane] - (b["y"] + b["h"] / 2))) for b in mine)
        assert lanes == ["QPU", e["workflow"]], (e, mine)
        for b in mine:
            unmatched.remove(b)
    assert unmatched == [], "bars without a hold or exec event behind them"


def _point_on(browser, element) -> tuple[int, int]:
    """Whole-pixel viewport coordinates inside ``element`` where it, not a bar drawn over it, is under the pointer."""
    point = browser.execute_script("""
        const e = arguments[0], r = e.getBoundingClientRect(), y = Math.round(r.top + r.height / 2);
        for (let x = Math.ceil(r.left); x <= Math.floor(r.right); x++) {
          if ([x - 0.5, x, x + 0.5].every(p => document.elementFromPoint(p, y) === e)) return [x, y];
        }
        return null;""", element)
    assert point, "no uncovered point on the bar"
    return point[0], point[1]


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def test_hovering_a_bar_shows_its_node_user_and_times(browser, page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.support.ui import WebDriverWait

    path, events = page
    browser.get(path.as_uri())
    t0 = min(e["start"] for e in events)
    tip = browser.find_element("id", "tip")
    assert not tip.is_displayed()
    # The second quantum node of w1: its hold on the QPU lane, and its exec there.
    for kind in ("hold", "exec"):
        e = next(e for e in events if e["kind"] == kind and e["workflow"] == "w1" and e["node"] == "q0002")
        bars = browser.find_elements("css selector", f'svg [data-kind="{kind}"][data-node="w1/q0002"]')
        bar = min(bars, key=lambda b: b.rect["y"])  # the device's lane is the top one
        x, y = _point_on(browser, bar)
        actions = ActionBuilder(browser)
        actions.pointer_action.move_to_location(x, y)
        actions.perform()
        WebDriverWait(browser, 5).until(lambda d: tip.is_displayed())
        text = tip.text
        assert f"w1/q0002 {kind}" in text, text
        assert f"user {e['user']}" in text, text
        assert f"{e['start'] - t0:.3f}-{e['end'] - t0:.3f} s" in text, text
        assert f"{_clock(e['start'])}-{_clock(e['end'])} UTC" in text, text
        # The box is beside the pointer, inside the window.
        box = tip.rect
        assert box["x"] >= x - 1 - box["width"] and box["x"] <= x + 20 and box["x"] + box["width"] <= 1400
    ActionChains(browser).move_to_element(browser.find_element("css selector", "h1")).perform()
    WebDriverWait(browser, 5).until(lambda d: not tip.is_displayed())
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
