"""Qiskit -> wire conversion time (issue 20): hcqw.qiskit.to_cirq per circuit size.

    .venv/bin/python bench/convert.py [--repeats 5] [--json out.json]

For each circuit, side by side in one run (median of --repeats, each path timed in turn):
- ``to_cirq``: hcqw's converter, gate by gate (the transpile to hcqw's basis included where the
  circuit needs one; its share is shown as ``transpile``);
- ``+ wire``: to_cirq and then the Cirq JSON the device client sends (``hcqw.codec.circuit_to_json``);
- ``via QASM``: the route through text, for comparison: ``qiskit.qasm2.dumps`` of the circuit
  translated to QASM 2's gates, then Cirq's ``circuit_from_qasm`` (needs ``ply``; "n/a" without it).
  Timed on bound circuits, as QASM 2 has no parameters, with barriers taken out beforehand (Cirq's
  parser refuses them).

Circuits: ``efficient_su2`` ansatz layers (parametrised, already in hcqw's basis: no transpile) at
growing width and depth, and random circuits of Qiskit's whole gate library (``random_circuit``,
seeded; these need the transpile).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from qiskit import QuantumCircuit, qasm2, transpile  # noqa: E402
from qiskit.circuit.library import efficient_su2  # noqa: E402
from qiskit.circuit.random import random_circuit  # noqa: E402

from hcqw.codec import circuit_to_json  # noqa: E402
from hcqw.qiskit.convert import GATES, to_cirq  # noqa: E402

QASM2_GATES = ["u", "cx", "measure", "reset"]


def circuits() -> list[tuple[str, QuantumCircuit]]:
    out = []
    for qubits, reps in ((4, 2), (10, 10), (20, 25), (30, 50)):
        qc = efficient_su2(qubits, reps=reps)
        qc.measure_all()
        out.append((f"efficient_su2 {qubits}q reps={reps}", qc))
    for qubits, depth in ((5, 10), (10, 50), (20, 100)):
        qc = random_circuit(qubits, depth, max_operands=3, measure=True, seed=qubits)
        out.append((f"random_circuit {qubits}q depth={depth}", qc))
    return out


def timed(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def qasm_route(bound: QuantumCircuit):
    """The text route's action: dumps + parse, with a transpile to u/cx first where Cirq's parser cannot read the
    circuit's own gates (as to_cirq transpiles where hcqw's basis lacks them). None without ply."""
    try:
        import ply  # noqa: F401  (circuit_from_qasm needs it)
        from cirq.contrib.qasm_import import circuit_from_qasm
    except ImportError:
        return None
    stripped = bound.copy_empty_like()  # Cirq's parser refuses barriers: they are taken out beforehand, untimed
    for instruction in bound.data:
        if instruction.operation.name != "barrier":
            stripped.append(instruction)
    bound = stripped
    try:
        circuit_from_qasm(qasm2.dumps(bound))
        return lambda: circuit_from_qasm(qasm2.dumps(bound))
    except Exception:  # noqa: BLE001 - cirq's parser raises its own types for gates it lacks
        return lambda: circuit_from_qasm(qasm2.dumps(transpile(bound, basis_gates=QASM2_GATES, optimization_level=0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for name, qc in circuits():
        needs_transpile = any(i.operation.name not in (*GATES, "measure", "reset", "barrier", "delay")
                              for i in qc.data)
        bound = qc.assign_parameters(np.random.default_rng(0).uniform(0, 1, qc.num_parameters)) if qc.parameters else qc
        basis = [*GATES, "measure", "reset", "delay"]
        row = {
            "circuit": name, "qiskit_ops": len(qc.data), "cirq_ops": len(list(to_cirq(qc).circuit.all_operations())),
            "to_cirq_ms": 1e3 * timed(lambda: to_cirq(qc), args.repeats),
            "transpile_ms": 1e3 * timed(lambda: transpile(qc, basis_gates=basis, optimization_level=0),
                                        args.repeats) if needs_transpile else 0.0,
            "to_wire_ms": 1e3 * timed(lambda: circuit_to_json(to_cirq(qc).circuit), args.repeats),
        }
        route = qasm_route(bound)
        row["via_qasm_ms"] = 1e3 * timed(route, args.repeats) if route else None
        row["bound_to_cirq_ms"] = 1e3 * timed(lambda: to_cirq(bound), args.repeats)
        rows.append(row)
        print(f"{name:30s} {row['qiskit_ops']:6d} ops -> {row['cirq_ops']:6d}: to_cirq {row['to_cirq_ms']:8.1f} ms "
              f"(transpile {row['transpile_ms']:7.1f}), + wire {row['to_wire_ms']:8.1f} ms; bound: to_cirq "
              f"{row['bound_to_cirq_ms']:8.1f} ms, via QASM "
              + (f"{row['via_qasm_ms']:8.1f} ms ({row['via_qasm_ms'] / row['bound_to_cirq_ms']:.1f}x)"
                 if row["via_qasm_ms"] else "n/a"), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
