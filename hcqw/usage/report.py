"""``hcqw usage`` output: an aligned text table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json

from hcqw.usage.table import Row, UsageTable

CHARGE_SOURCES = {
    "sacct": "SLURM's allocated gres/qpu time (sacct: elapsed x gres/qpu count)",
    "hold": "the device's hold intervals in the metrics logs (no SLURM)",
}
_NUMBERS = ("charges", "charged s", "batches", "busy s", "busy/charged")


def _numbers(row: Row, busy_known: bool) -> list[str]:
    if not busy_known:
        return [str(row.charges), f"{row.charged_s:.2f}", "n/a", "n/a", "n/a"]
    ratio = "-" if row.ratio is None else f"{row.ratio:.3f}"
    return [str(row.charges), f"{row.charged_s:.2f}", str(row.batches), f"{row.busy_s:.2f}", ratio]


def format_table(table: UsageTable) -> str:
    header = [*table.by, *_NUMBERS]
    known = table.busy_known
    lines = [[*(v if v is not None else "-" for v in r.key.values()), *_numbers(r, known)] for r in table.rows]
    total = ["total", *([""] * (len(table.by) - 1)), *_numbers(table.total, known)]
    widths = [max(len(cells[i]) for cells in (header, total, *lines)) for i in range(len(header))]
    numeric_from = len(table.by)

    def render(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i >= numeric_from else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [f"period: {table.period.describe()}",
           f"charged: {CHARGE_SOURCES[table.charge_source]}",
           "busy: exec events in the logs given" if known else "busy: n/a (no metrics logs given)",
           "", render(header), render(["-" * w for w in widths])]
    out += [render(cells) for cells in lines] or ["(no usage in this period)"]
    out += [render(["-" * w for w in widths]), render(total)]
    if table.unmatched_batches:
        out.append(f"{table.unmatched_batches} batch(es) lay outside every charge; counted under the user "
                   "their log names, without account")
    return "\n".join(out)


def to_json(table: UsageTable) -> str:
    return json.dumps(table.to_dict(), indent=2)


def to_csv(table: UsageTable) -> str:
    """One line per row (no total), with a header; empty group values are empty cells."""
    buffer = io.StringIO()
    fields = [*table.by, "charges", "charged_s", "batches", "busy_s", "busy_ratio"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in table.rows:
        writer.writerow({k: ("" if v is None else v) for k, v in table.row_dict(row).items()})
    return buffer.getvalue()
