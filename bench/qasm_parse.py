"""OpenQASM parse time: hcqw.qasm beside cirq.contrib.qasm_import (needs ``ply``), on the same texts, in one run.

    .venv/bin/python bench/qasm_parse.py [--ops 1000] [--qubits 12] [--repeats 15]

Texts (each about --ops gate applications, numeric angles unless said):
- ``qasm2``: qelib1.inc gates (h, x, sx, rx, ry, rz, u3, cx, cz, cp, swap, ccx), terminal measurement;
- ``qasm3``: the same circuit in OpenQASM 3 with stdgates.inc;
- ``qasm3-params``: the same with every angle an ``input float[64]`` parameter times a number;
- ``qiskit-qasm3`` / ``qiskit-qasm2``: Qiskit's ``random_circuit`` as ``qasm3.dumps``/``qasm2.dumps`` emit it
  (when qiskit is installed).
Each row: median wall time of --repeats parses per parser, the parsers alternating within each repeat.
Where both parse a text, the two circuits' final states (measurements removed, parameters bound) are
compared, so the figures are for the same work. Then the cost at hcqw's bounds: the largest program it
accepts (100,000 gate applications) and a 40-level doubling definition it refuses.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from typing import Callable

import cirq
import numpy as np

from hcqw.qasm import parse
from hcqw.qasm.program import MAX_WORK

GATES = [("h", 0, 1), ("x", 0, 1), ("sx", 0, 1), ("rx", 1, 1), ("ry", 1, 1), ("rz", 1, 1), ("u3", 3, 1),
         ("cx", 0, 2), ("cz", 0, 2), ("cp", 1, 2), ("swap", 0, 2), ("ccx", 0, 3)]


def circuit_texts(ops: int, qubits: int, seed: int = 1) -> dict[str, tuple[str, dict[str, float]]]:
    """name -> (text, parameter values)."""
    rng = random.Random(seed)
    calls = []
    for _ in range(ops):
        name, n_params, n_qubits = rng.choice(GATES)
        calls.append((name, [rng.uniform(-math.pi, math.pi) for _ in range(n_params)], rng.sample(range(qubits), n_qubits)))
    body2 = "".join(f"{name}({','.join(map(repr, ps))}) " * bool(ps) + f"{name} " * (not ps)
                    + ",".join(f"q[{i}]" for i in qs) + ";\n" for name, ps, qs in calls)
    body3 = body2.replace(",q[", ", q[")
    values, body_params, k = {}, [], 0
    for name, ps, qs in calls:
        names = []
        for p in ps:
            values[f"a{k}"] = p / 2
            names.append(f"2*a{k}")
            k += 1
        body_params.append(f"{name}({', '.join(names)}) " if ps else f"{name} ")
        body_params[-1] += ", ".join(f"q[{i}]" for i in qs) + ";\n"
    inputs = "".join(f"input float[64] {name};\n" for name in values)
    return {
        "qasm2": (f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{qubits}];\ncreg c[{qubits}];\n{body2}'
                  "measure q -> c;\n", {}),
        "qasm3": (f'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[{qubits}] q;\nbit[{qubits}] c;\n{body3}'
                  "c = measure q;\n", {}),
        "qasm3-params": (f'OPENQASM 3.0;\ninclude "stdgates.inc";\n{inputs}qubit[{qubits}] q;\nbit[{qubits}] c;\n'
                         + "".join(body_params) + "c = measure q;\n", values),
    }


def qiskit_texts(ops: int, qubits: int) -> dict[str, tuple[str, dict[str, float]]]:
    try:
        from qiskit import qasm2, qasm3
        from qiskit.circuit.random import random_circuit
    except ImportError:
        return {}
    depth = 1
    while True:  # the depth that gives about ``ops`` operations
        circuit = random_circuit(qubits, depth, max_operands=3, measure=True, seed=5)
        if len(circuit.data) >= ops:
            break
        depth = max(depth + 1, int(depth * ops / max(1, len(circuit.data))))
    return {f"qiskit-qasm3 ({len(circuit.data)} ops)": (qasm3.dumps(circuit), {}),
            f"qiskit-qasm2 ({len(circuit.data)} ops)": (qasm2.dumps(circuit), {})}


def cirq_parser() -> Callable[[str], cirq.Circuit] | None:
    try:
        from cirq.contrib.qasm_import import circuit_from_qasm
        import ply  # noqa: F401  (circuit_from_qasm needs it at first use)
    except ImportError:
        return None
    return circuit_from_qasm


def final_state(circuit: cirq.Circuit, values: dict[str, float], qubits: int) -> np.ndarray:
    circuit = cirq.resolve_parameters(cirq.drop_terminal_measurements(circuit), values)
    order = sorted(circuit.all_qubits())
    assert len(order) <= qubits
    return cirq.final_state_vector(circuit, qubit_order=order, dtype=np.complex128)


def timed(parser: Callable[[str], cirq.Circuit], text: str) -> tuple[float, cirq.Circuit | None, str]:
    start = time.perf_counter()
    try:
        circuit = parser(text)
    except Exception as err:  # noqa: BLE001  (the baseline's refusals are reported, not raised)
        return time.perf_counter() - start, None, f"{type(err).__name__}: {str(err).splitlines()[0][:70]}"
    return time.perf_counter() - start, circuit, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--qubits", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    baseline = cirq_parser()
    texts = {**circuit_texts(args.ops, args.qubits), **qiskit_texts(args.ops, args.qubits)}
    parse(texts["qasm2"][0])  # imports and first-use caches out of the figures
    if baseline:
        baseline(texts["qasm2"][0])
    print(f"| text ({args.ops} ops asked, {args.qubits} qubits) | chars | hcqw.qasm ms | cirq.contrib.qasm_import ms "
          "| ratio | same state |")
    print("|---|---:|---:|---:|---:|---|")
    for name, (text, values) in texts.items():
        ours, theirs, refusal = [], [], ""
        circuit = other = None
        for _ in range(args.repeats):
            seconds, circuit, error = timed(parse, text)
            if error:
                raise SystemExit(f"hcqw.qasm refused {name}: {error}")
            ours.append(seconds)
            if baseline and not refusal:
                seconds, other, refusal = timed(baseline, text)
                theirs.append(seconds)
        mine = statistics.median(ours) * 1e3
        if baseline is None or refusal:
            print(f"| {name} | {len(text):,} | {mine:.1f} | {refusal or 'not installed (needs ply)'} | | |")
            continue
        base = statistics.median(theirs) * 1e3
        same = cirq.allclose_up_to_global_phase(final_state(circuit, values, args.qubits),
                                                final_state(other, values, args.qubits), atol=1e-6)
        print(f"| {name} | {len(text):,} | {mine:.1f} | {base:.1f} | {base / mine:.2f}x | {same} |")
    largest = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1000] q;\n' + "h q;\n" * (MAX_WORK // 1000)
    seconds, _, error = timed(parse, largest)
    print(f"\nlargest accepted program ({MAX_WORK:,} gate applications, {len(largest):,} chars): {seconds * 1e3:.0f} ms"
          f"{' ' + error if error else ''}")
    levels = ["gate g0 a { x a; }"] + [f"gate g{i} a {{ g{i - 1} a; g{i - 1} a; }}" for i in range(1, 41)]
    bomb = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n' + "\n".join(levels) + "\nqubit q;\ng40 q;\n"
    seconds, _, error = timed(parse, bomb)
    print(f"2**40-gate doubling definition ({len(bomb):,} chars) refused in {seconds * 1e3:.1f} ms: {error}")


if __name__ == "__main__":
    main()
