"""What the primitives and the backend share: one ``run()`` = one device lease, and sweep points from bindings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hcqw.device.backend import DeviceLimits
from hcqw.device.provider import DeviceLease
from hcqw.device.work import Samples, WorkItem

Seed = int | np.random.Generator | None
MAX_SWEEP_POINTS = DeviceLimits.__dataclass_fields__["max_sweep_points"].default  # per work item, every device


def lease_seed(seed: Seed) -> int | None:
    """The device seed of one run: the int itself (every run then samples alike, as Qiskit's seeded
    primitives do), a fresh draw from a Generator, or None (unseeded)."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**31))
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")
    return int(seed)


def run_items(items: Sequence[WorkItem], seed: Seed, lease: DeviceLease | None = None) -> list[list[Samples]]:
    """Run ``items`` in one quantum block: one lease of this process's device (``hcqw.qpu.open_qpu``),
    closed when they are done, so inside a quantum node the qpu component is freed at once.

    With ``lease`` (a quantum step's open lease, e.g. a ``HybridLoop``'s ``qpu``) they run on it as one
    batch, and it stays open: the caller's block, seeded by whoever opened it.

    An item of more sweep points than a work item may carry (``DeviceLimits.max_sweep_points``'s
    default) goes as several, in the same batch, and its results are joined again."""
    if not items:
        return []
    chunks = [WorkItem(item.circuit, item.repetitions, item.params[start:start + MAX_SWEEP_POINTS])
              for item in items for start in range(0, len(item.params), MAX_SWEEP_POINTS)]
    if lease is not None:
        results = lease.run_batch(chunks)
    else:
        from hcqw.qpu import open_qpu

        with open_qpu(seed=lease_seed(seed)) as qpu:
            results = qpu.run_batch(chunks)
    joined, position = [], 0
    for item in items:
        count = -(-len(item.params) // MAX_SWEEP_POINTS)
        joined.append([samples for chunk in results[position:position + count] for samples in chunk])
        position += count
    return joined


def sweep_points(names: Sequence[str], values: np.ndarray) -> tuple[dict[str, float], ...]:
    """``values`` (``(*shape, len(names))``) as one ``{name: value}`` per index of ``shape``, in C order."""
    values = np.asarray(values, dtype=float)
    count = int(np.prod(values.shape[:-1], dtype=int))
    return tuple(dict(zip(names, map(float, row))) for row in values.reshape(count, len(names)))
