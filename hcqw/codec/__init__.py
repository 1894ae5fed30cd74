"""The wire format for circuits and results: Cirq JSON and raw numpy buffers, never pickles.

Anything that crosses a process boundary to or from a device (QPU service, hetjob
gateway) goes through here, so a peer can at worst send us a bad circuit, never code:
circuits are decoded against an allow-list with their cost bounded first
(``hcqw.codec.circuit``), never with ``cirq.read_json``.

Both ends use it: ``hcqw.service.client`` encodes work items and decodes results,
``hcqw.service.dispatcher`` the other way round.

- A work item is a JSON-able dict: ``{"circuit": <Cirq JSON str>, "repetitions": int, "params": [{...}]}``.
- Results are a JSON-able header plus a list of byte buffers: for each sweep point,
  ``{key: {"dtype": str, "shape": [r, q], "buffer": index}}``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hcqw.codec.circuit import DEFAULT_BOUNDS, CircuitBounds, Decoded, Shape, decode_circuit, screen_circuit
from hcqw.device.work import Samples, WorkItem
from hcqw.errors import CircuitError

__all__ = ["CircuitBounds", "Decoded", "Shape", "circuit_from_json", "circuit_to_json", "decode_circuit",
           "samples_from_wire", "samples_to_wire", "screen_circuit", "work_item_fields", "work_item_from_wire", "work_item_to_wire"]

# Only plain integer dtypes may come off the wire: never object arrays.
_ALLOWED_DTYPES = {np.dtype(t).str for t in ("i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "?")}


def circuit_to_json(circuit: Any) -> str:
    import cirq

    if not isinstance(circuit, cirq.AbstractCircuit):
        raise CircuitError(f"expected a cirq.Circuit, got {type(circuit).__name__}")
    return cirq.to_json(circuit)


def circuit_from_json(text: Any, bounds: CircuitBounds = DEFAULT_BOUNDS) -> Any:
    """Decode a Cirq JSON circuit against the allow-list of ``hcqw.codec.circuit``; ``CircuitError``
    naming the problem on anything else."""
    return decode_circuit(text, bounds).circuit


def work_item_to_wire(item: WorkItem) -> dict:
    """A circuit given as Cirq JSON text passes through untouched, so a client need not import cirq."""
    circuit = item.circuit if isinstance(item.circuit, str) else circuit_to_json(item.circuit)
    return {"circuit": circuit, "repetitions": item.repetitions, "params": list(item.params)}


def work_item_fields(data: Any, where: str = "work item") -> tuple[str, int, list[dict]]:
    """The circuit's JSON text, repetitions and params of a wire work item, checked for shape only
    (the circuit is not decoded: the service caches decoded circuits by their text)."""
    if not isinstance(data, dict):
        raise CircuitError(f"{where}: must be an object, got {type(data).__name__}")
    if set(data) - {"circuit", "repetitions", "params"} or "circuit" not in data or "repetitions" not in data:
        raise CircuitError(f"{where}: needs 'circuit' and 'repetitions' (optional 'params'); "
                           f"got keys {sorted(str(k)[:32] for k in data)[:8]}")
    text, repetitions, params = data["circuit"], data["repetitions"], data.get("params") or [{}]
    if isinstance(repetitions, bool) or not isinstance(repetitions, int):
        raise CircuitError(f"{where}: repetitions must be an integer, got {type(repetitions).__name__}")
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise CircuitError(f"{where}: params must be a list of {{symbol: number}} objects")
    if not isinstance(text, str):
        raise CircuitError(f"{where}: circuit must be a Cirq JSON string, got {type(text).__name__}")
    return text, repetitions, params


def work_item_from_wire(data: Any, where: str = "work item") -> WorkItem:
    text, repetitions, params = work_item_fields(data, where)
    try:
        circuit = circuit_from_json(text)
    except CircuitError as err:
        raise CircuitError(f"{where}: {err}") from None
    return WorkItem.build(circuit, repetitions, params)


def samples_to_wire(points: Sequence[Samples]) -> tuple[list[dict], list[bytes]]:
    header: list[dict] = []
    buffers: list[bytes] = []
    for samples in points:
        entry = {}
        for key, array in samples.items():
            array = np.ascontiguousarray(array)
            entry[key] = {"dtype": array.dtype.str, "shape": list(array.shape), "buffer": len(buffers)}
            buffers.append(array.tobytes())
        header.append(entry)
    return header, buffers


def samples_from_wire(header: Any, buffers: Sequence[bytes]) -> list[Samples]:
    """Rebuild result arrays, checking dtype, shape and size against the buffers received."""
    if not isinstance(header, list):
        raise ValueError("result header must be a list of sweep points")
    points: list[Samples] = []
    for entry in header:
        samples: Samples = {}
        for key, spec in entry.items():
            dtype = np.dtype(spec["dtype"])
            if dtype.str not in _ALLOWED_DTYPES:
                raise ValueError(f"result {key!r}: dtype {dtype.str} is not an integer dtype")
            shape = tuple(int(n) for n in spec["shape"])
            buffer = buffers[int(spec["buffer"])]
            if len(shape) != 2 or int(np.prod(shape)) * dtype.itemsize != len(buffer):
                raise ValueError(f"result {key!r}: shape {shape} does not match a {len(buffer)}-byte buffer")
            samples[key] = np.frombuffer(buffer, dtype=dtype).reshape(shape)
        points.append(samples)
    return points
