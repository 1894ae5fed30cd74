"""A self-contained HTML page: the Gantt chart as inline SVG (hover a bar for its node, user and times) and the figures.

Hand-written SVG rather than matplotlib's, so the page needs no matplotlib and no external files:
it can be attached to a ticket or opened from a cluster's shared file system. Each bar carries its
tooltip in ``data-*`` attributes; a few lines of inline script show it in a box next to the pointer
at once (an SVG ``<title>`` shows only after a delay, and not at all on touch screens).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from hcqw.timeline.events import Event
from hcqw.timeline.layout import Bar, Panel, layout, legend
from hcqw.timeline.report import TOTALS_NOTE, holdings, several_devices, table_rows

WIDTH = 1000  # px of the time axis
LABEL_W = 170  # px for lane names
LANE_H = 22
HEIGHT = {"free": 0.9, "hold": 0.8, "exec": 0.55, "cpu": 0.5}
LABEL_CHAR_W = 5  # px per character of a bar's label (8 px font)


def render_html(runs: Mapping[str, Sequence[Event]], path: Path, title: str | None = None) -> Path:
    panels = [layout(label, list(events)) for label, events in runs.items()]
    horizon = max(p.duration for p in panels) or 1.0
    title = title or "QPU timeline"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{_e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "h2{font-size:15px;margin:1.2em 0 .3em}svg text{font-size:11px}"
        "#tip{position:fixed;display:none;pointer-events:none;background:#fff;border:1px solid #888;padding:3px 6px;"
        "font-size:12px;white-space:pre;box-shadow:1px 1px 3px rgba(0,0,0,.3)}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<div id="tip" role="tooltip"></div>',
    ]
    for panel in panels:
        parts.append(f"<h2>{_e(panel.caption())}</h2>")
        parts.append(_svg(panel, horizon))
    parts.append(_legend_svg())
    parts.append(_table(panels))
    parts.append(TOOLTIP_SCRIPT)
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


# The box follows the pointer, kept inside the window; it shows the bar's data-tip (lines split by newlines).
TOOLTIP_SCRIPT = """<script>
(function () {
  var tip = document.getElementById("tip");
  function place(ev) {
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = Math.max(0, ev.clientX - tip.offsetWidth - 6);
    if (y + tip.offsetHeight > window.innerHeight) y = Math.max(0, ev.clientY - tip.offsetHeight - 6);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  document.addEventListener("mouseover", function (ev) {
    var bar = ev.target.closest ? ev.target.closest("[data-tip]") : null;
    if (!bar) { tip.style.display = "none"; return; }
    tip.textContent = bar.getAttribute("data-tip");
    tip.style.display = "block";
    place(ev);
  });
  document.addEventListener("mousemove", function (ev) { if (tip.style.display === "block") place(ev); });
  document.addEventListener("mouseout", function (ev) {
    if (!ev.relatedTarget || !ev.relatedTarget.closest || !ev.relatedTarget.closest("[data-tip]")) tip.style.display = "none";
  });
})();
</script>"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _tip(bar: Bar, t0: float) -> str:
    """The bar's data-* attributes: what it shows, who ran it, and when (from the run's start and by the clock, UTC)."""
    lines = [bar.tooltip]
    if bar.user:
        lines.append(f"user {bar.user}")
    lines.append(f"{_clock(t0 + bar.start)}-{_clock(t0 + bar.end)} UTC")
    attrs = {"tip": "\n".join(lines), "kind": bar.style, "node": bar.node, "user": bar.user,
             "start": f"{bar.start:.6f}", "end": f"{bar.end:.6f}"}
    return " ".join(f'data-{key}="{_e(value)}"' for key, value in attrs.items() if value)


def _svg(panel: Panel, horizon: float) -> str:
    scale = WIDTH / horizon
    height = LANE_H * len(panel.lanes) + 24
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_W + WIDTH + 10}" height="{height}" '
           f'role="img" aria-label="{_e(panel.caption())}">',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#d62728" stroke-width="2"/>'
           "</pattern></defs>"]
    for i, lane in enumerate(panel.lanes):
        y = i * LANE_H + LANE_H / 2
        out.append(f'<text x="{LABEL_W - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(lane)}</text>')
    for lane in range(1, panel.qpu_lanes + 1):  # below each device's lane; the last one parts them from the workflows
        y, dash = lane * LANE_H, "" if lane == panel.qpu_lanes else ' stroke-dasharray="2,2"'
        out.append(f'<line x1="{LABEL_W}" x2="{LABEL_W + WIDTH}" y1="{y}" y2="{y}" stroke="#000" stroke-width="0.5"{dash}/>')
    labels: list[str] = []
    for bar in panel.bars:
        x = LABEL_W + bar.start * scale
        w = max((bar.end - bar.start) * scale, 0.5)
        mid = bar.lane * LANE_H + LANE_H / 2
        tip = _tip(bar, panel.summary.start)
        if bar.style == "wait":
            out.append(f'<line x1="{x:.2f}" x2="{x + w:.2f}" y1="{mid:.1f}" y2="{mid:.1f}" stroke="{bar.colour}" '
                       f'stroke-dasharray="2,2" stroke-width="1.5" {tip}/>')
            continue
        h = HEIGHT[bar.style] * LANE_H
        style = {"hold": f'fill="{bar.colour}" fill-opacity="0.25" stroke="{bar.colour}" stroke-width="0.6"',
                 "free": 'fill="url(#hatch)" fill-opacity="0.5"'}.get(bar.style, f'fill="{bar.colour}"')
        out.append(f'<rect x="{x:.2f}" y="{mid - h / 2:.1f}" width="{w:.2f}" height="{h:.1f}" {style} {tip}/>')
        if bar.label and w >= LABEL_CHAR_W * (len(bar.label) + 1):
            labels.append(f'<text x="{x + 2:.2f}" y="{mid - h / 2 + 7:.1f}" style="font-size:8px" pointer-events="none">{_e(bar.label)}</text>')
    out += labels  # over the execs
    axis_y = LANE_H * len(panel.lanes) + 14
    step = _tick_step(horizon)
    for i in range(int(horizon / step + 1e-9) + 1):  # counted, not summed: no drift in the labels
        t = round(i * step, 6)
        out.append(f'<text x="{LABEL_W + t * scale:.1f}" y="{axis_y}" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{LABEL_W + WIDTH}" y="{axis_y}" text-anchor="end"> s</text>')
    out.append("</svg>")
    return "\n".join(out)


def _tick_step(horizon: float) -> float:
    for step in (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 3600):
        if horizon / step <= 12:
            return step
    return horizon / 10


def _legend_svg() -> str:
    items = legend()
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_W + WIDTH}" height="24">']
    x = LABEL_W
    for style, colour, text in items:
        if style == "wait":
            out.append(f'<line x1="{x}" x2="{x + 18}" y1="12" y2="12" stroke="{colour}" stroke-dasharray="2,2" stroke-width="1.5"/>')
        else:
            fill = {"hold": f'fill="{colour}" fill-opacity="0.25" stroke="{colour}"',
                    "free": 'fill="url(#hatch)" stroke="#d62728" stroke-width="0.5"'}.get(style, f'fill="{colour}"')
            out.append(f'<rect x="{x}" y="5" width="18" height="14" {fill}/>')
        out.append(f'<text x="{x + 22}" y="16">{_e(text)}</text>')
        x += 40 + 6 * len(text)
    out.append("</svg>")
    return "\n".join(out)


def _table(panels: list[Panel]) -> str:
    head = "".join(f"<th>{_e(p.label)}</th>" for p in panels)
    rows = [f"<tr><th>figure</th>{head}</tr>"]
    summaries = {p.label: p.summary for p in panels}
    for name, values in table_rows(summaries):
        if not any(values):  # a device's row group starts
            rows.append(f'<tr><th colspan="{len(panels) + 1}" style="text-align:left">{_e(name)}</th></tr>')
            continue
        rows.append(f"<tr><td>{_e(name)}</td>" + "".join(f"<td>{_e(v)}</td>" for v in values) + "</tr>")
    for p in panels:
        for title, held in holdings(p.summary):
            rows.append(f'<tr><td>{_e(title)} ({_e(p.label)})</td><td colspan="{len(panels)}" '
                        f'style="text-align:left">{_e(held)}</td></tr>')
    table = "<table>\n" + "\n".join(rows) + "\n</table>"
    return table + (f"\n<p>{_e(TOTALS_NOTE)}</p>" if several_devices(summaries) else "")

