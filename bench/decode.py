"""Circuit decode time at a QPU service, before and after the allow-list decoder (issue 20).

    .venv/bin/python bench/decode.py [--repeats 200] [--json out.json]

For each circuit (the examples' VQE and QAOA circuits, and layered random circuits of 10 to
10,000 operations with parametrised rotations), the Cirq JSON text a client sends is decoded
by ``cirq.read_json`` (the service's decoder before) and by ``hcqw.codec.decode_circuit`` (now),
alternating one call of each, so both see the same machine load; the table shows the median of
--repeats calls per decoder and their ratio. Both decoders' results are checked to be equal.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cirq  # noqa: E402
import sympy  # noqa: E402

from hcqw.codec import circuit_to_json, decode_circuit  # noqa: E402


def layered(operations: int, qubits: int = 8, seed: int = 5) -> cirq.Circuit:
    """Alternating layers of parametrised single-qubit rotations and CZ ladders."""
    rng = random.Random(seed)
    q = cirq.LineQubit.range(qubits)
    ops, layer = [], 0
    while len(ops) < operations:
        if layer % 2 == 0:
            ops += [rng.choice([cirq.rx, cirq.ry, cirq.rz])(sympy.Symbol(f"t{layer}_{i}"))(q[i]) for i in range(qubits)]
        else:
            ops += [cirq.CZ(q[i], q[i + 1]) for i in range(layer % 2 - 1, qubits - 1, 2)]
        layer += 1
    return cirq.Circuit(ops[:operations], cirq.measure(*q, key="m"))


def circuits() -> dict[str, cirq.Circuit]:
    from examples.qaoa_maxcut.pipeline import qaoa_circuit
    from examples.vqe.pipeline import ansatz

    found = {"vqe H2 ansatz (x basis)": ansatz(1)[1], "qaoa maxcut (2 layers)": qaoa_circuit(2)[0]}
    found.update({f"layered {n} ops": layered(n) for n in (10, 100, 1000, 10_000)})
    return found


def measure(text: str, repeats: int) -> tuple[float, float]:
    for _ in range(3):  # warm both: sympy's symbol cache, the allocator
        cirq.read_json(json_text=text)
        decode_circuit(text)
    before, after = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        cirq.read_json(json_text=text)
        before.append(time.perf_counter() - start)
        start = time.perf_counter()
        decode_circuit(text)
        after.append(time.perf_counter() - start)
    return statistics.median(before), statistics.median(after)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print(f"{'circuit':<26} {'ops':>6} {'bytes':>9} {'cirq.read_json':>15} {'decode_circuit':>15} {'after/before':>13}")
    for name, circuit in circuits().items():
        text = circuit_to_json(circuit)
        assert decode_circuit(text).circuit == cirq.read_json(json_text=text) == circuit, name
        repeats = max(5, args.repeats // max(1, len(text) // 200_000))
        before, after = measure(text, repeats)
        ops = len(list(circuit.all_operations()))
        rows.append({"circuit": name, "operations": ops, "bytes": len(text), "read_json_s": before,
                     "decode_circuit_s": after, "repeats": repeats})
        print(f"{name:<26} {ops:>6} {len(text):>9} {before * 1000:>12.3f} ms {after * 1000:>12.3f} ms "
              f"{after / before:>12.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
