"""The usage table: charges and busy intervals summed per user, account and workflow. Pure logic."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from hcqw.usage.period import Period, UsageError
from hcqw.usage.records import Busy, Charge
from hcqw.workflow import node_parts

#: What rows may be grouped by (``--by``), in column order.
GROUPS = ("user", "account", "workflow")
#: Seconds an exec may lie outside its charge: SLURM records whole seconds.
TOLERANCE = 1.0


@dataclass
class Row:
    """One group's usage; group fields not grouped by are absent from ``key``."""

    key: dict[str, str | None]
    charges: int = 0  # qpu components (SLURM) or holds (logs)
    charged_s: float = 0.0  # device-seconds: length x gres/qpu count, cut to the period
    batches: int = 0  # exec events
    busy_s: float = 0.0

    @property
    def ratio(self) -> float | None:
        """busy / charged; None when nothing was charged."""
        return self.busy_s / self.charged_s if self.charged_s > 0 else None

    def to_dict(self) -> dict:
        return {**self.key, "charges": self.charges, "charged_s": self.charged_s, "batches": self.batches,
                "busy_s": self.busy_s, "busy_ratio": self.ratio}


@dataclass
class UsageTable:
    period: Period
    charge_source: str  # "sacct" or "hold"
    by: tuple[str, ...]
    rows: list[Row] = field(default_factory=list)
    unmatched_batches: int = 0  # execs no charge covers (attributed by their own log's user)
    busy_known: bool = True  # False when no log was given: busy is unknown, not zero

    @property
    def total(self) -> Row:
        return Row({}, sum(r.charges for r in self.rows), sum(r.charged_s for r in self.rows),
                   sum(r.batches for r in self.rows), sum(r.busy_s for r in self.rows))

    def row_dict(self, row: Row) -> dict:
        values = row.to_dict()
        if not self.busy_known:
            values.update(batches=None, busy_s=None, busy_ratio=None)
        return values

    def to_dict(self) -> dict:
        return {"period": self.period.to_dict(), "charge_source": self.charge_source, "by": list(self.by),
                "busy_known": self.busy_known, "rows": [self.row_dict(r) for r in self.rows],
                "total": self.row_dict(self.total), "unmatched_batches": self.unmatched_batches}


def parse_groups(text: str) -> tuple[str, ...]:
    """``'user,workflow'`` -> ``('user', 'workflow')`` in column order."""
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(chosen - set(GROUPS))
    if unknown or not chosen:
        raise UsageError(f"--by {text!r}: choose one or more of {','.join(GROUPS)}")
    return tuple(g for g in GROUPS if g in chosen)


def owner(busy: Busy, charges_by_node: dict[tuple, list[Charge]]) -> Charge | None:
    """The charge of the same workflow node whose interval (give or take ``TOLERANCE``) holds the exec's midpoint."""
    if busy.workflow is None:
        return None
    middle = (busy.start + busy.end) / 2
    for charge in charges_by_node.get((busy.workflow, busy.node), ()):
        if charge.start - TOLERANCE <= middle <= charge.end + TOLERANCE:
            return charge
    return None


def usage_table(charges: Sequence[Charge], busy: Iterable[Busy] | None, period: Period, charge_source: str,
                by: tuple[str, ...] = GROUPS) -> UsageTable:
    """Sum charged and busy seconds inside ``period`` per group of ``by``; ``busy`` None: not known."""
    rows: dict[tuple, Row] = {}

    def row(user: str | None, account: str | None, workflow: str | None) -> Row:
        values = {"user": user, "account": account, "workflow": workflow}
        key = {g: values[g] for g in by}
        return rows.setdefault(tuple(key.values()), Row(key))

    charges_by_node: dict[tuple, list[Charge]] = defaultdict(list)
    for charge in charges:
        if charge.workflow is not None:
            # A fused job (qcNNNN) is charged for its quantum part, whose execs name that part (qNNNN).
            for node in node_parts(charge.node) if charge.node else (charge.node,):
                charges_by_node[(charge.workflow, node)].append(charge)
        if period.touches(charge.start, charge.end):
            target = row(charge.user, charge.account, charge.workflow)
            target.charges += 1
            target.charged_s += period.overlap(charge.start, charge.end) * charge.devices
    unmatched = 0
    for batch in busy or ():
        if not period.touches(batch.start, batch.end):
            continue
        charge = owner(batch, charges_by_node)
        if charge is None:
            unmatched += 1
            target = row(batch.user, None, batch.workflow)
        else:
            target = row(charge.user, charge.account, charge.workflow)
        target.batches += 1
        target.busy_s += period.overlap(batch.start, batch.end)
    ordered = sorted(rows.values(), key=lambda r: tuple((v is None, v or "") for v in r.key.values()))
    return UsageTable(period, charge_source, by, ordered, unmatched, busy_known=busy is not None)
