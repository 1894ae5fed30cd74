"""Work items and their results: the unit that crosses to and from a quantum device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from hcqw.errors import CircuitError

# One sweep point: symbol name -> value.
ParamPoint = dict[str, float]
# One sweep point's outcome: measurement key -> (repetitions x qubits) integer array.
Samples = dict[str, np.ndarray]


@dataclass(frozen=True)
class WorkItem:
    """One circuit, run at each sweep point for ``repetitions`` shots.

    ``params`` holds resolved sweep points (``[{}]`` for a circuit without symbols),
    so a work item is plain data that encodes to JSON without Cirq sweep objects.
    """

    circuit: Any  # cirq.AbstractCircuit; typed loosely so this module does not import cirq
    repetitions: int
    params: tuple[ParamPoint, ...] = field(default=({},))

    @classmethod
    def build(cls, circuit: Any, repetitions: int, params: Any = None) -> "WorkItem":
        """Make a work item from a circuit and any Cirq sweepable (``None``, dict, Sweep, list).

        A string that starts with ``OPENQASM`` is OpenQASM 2/3 text, parsed here on the client
        (``hcqw.qasm``); any other string is Cirq JSON text, sent as it is."""
        if isinstance(circuit, str):
            from hcqw.qasm import is_openqasm, parse  # imported on use: a client sending Cirq JSON loads no parser

            if is_openqasm(circuit):
                circuit = parse(circuit)
        return cls(circuit=circuit, repetitions=repetitions, params=resolve_sweep(params))


def resolve_sweep(params: Any) -> tuple[ParamPoint, ...]:
    """Turn any Cirq sweepable into a tuple of ``{symbol: float}`` points."""
    if params is None:
        return ({},)
    if isinstance(params, Sequence) and params and all(isinstance(p, Mapping) for p in params):
        points = params
    else:
        import cirq

        try:
            points = [r.param_dict for r in cirq.to_resolvers(params)]
        except Exception as err:  # cirq raises TypeError/ValueError of its own wording
            raise CircuitError(
                f"params must be a Cirq sweepable (dict, cirq.Sweep, list of dicts), got {type(params).__name__}: {err}"
            ) from None
    resolved: list[ParamPoint] = []
    for point in points:
        try:
            resolved.append({str(k): float(v) for k, v in point.items()})
        except (TypeError, ValueError) as err:
            raise CircuitError(f"sweep point {dict(point)!r} has a non-numeric value: {err}") from None
    if not resolved:
        raise CircuitError("params is an empty sweep; pass at least one point (or None for no parameters)")
    return tuple(resolved)


def check_samples(samples: Samples) -> Samples:
    """Normalise one sweep point's measurements to compact integer arrays."""
    out: Samples = {}
    for key, array in samples.items():
        array = np.asarray(array)
        if array.dtype.kind not in "iub" or array.ndim != 2:
            raise CircuitError(f"measurement {key!r}: expected a 2-D integer array, got {array.dtype} {array.shape}")
        out[str(key)] = array.astype(np.int8, copy=False) if array.size == 0 or array.max() < 128 else array
    return out
