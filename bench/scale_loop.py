"""The light hybrid loop of ``bench/scale.py``: a Bell circuit per quantum block (sent as Cirq JSON text, so
no node imports cirq), a modelled hold of the device, and a classical step that only sleeps."""

from __future__ import annotations

import time

from hcqw.workflow import HybridLoop

BELL = ('{"cirq_type": "Circuit", "moments": [{"cirq_type": "Moment", "operations": [{"cirq_type": "GateOperation", '
        '"gate": {"cirq_type": "HPowGate", "exponent": 1.0, "global_shift": 0.0}, "qubits": [{"cirq_type": '
        '"LineQubit", "x": 0}]}]}, {"cirq_type": "Moment", "operations": [{"cirq_type": "GateOperation", "gate": '
        '{"cirq_type": "CXPowGate", "exponent": 1.0, "global_shift": 0.0}, "qubits": [{"cirq_type": "LineQubit", '
        '"x": 0}, {"cirq_type": "LineQubit", "x": 1}]}]}, {"cirq_type": "Moment", "operations": [{"cirq_type": '
        '"GateOperation", "gate": {"cirq_type": "MeasurementGate", "num_qubits": 2, "key": "m", "invert_mask": []}, '
        '"qubits": [{"cirq_type": "LineQubit", "x": 0}, {"cirq_type": "LineQubit", "x": 1}]}]}]}')


def make(iterations: int = 3, shots: int = 20, hold: float = 0.2, classical: float = 0.2) -> HybridLoop:
    """``hold``: seconds each quantum block keeps the device after its batch; ``classical``: seconds each
    classical step sleeps."""

    def quantum_step(state: int, qpu) -> list:
        from hcqw.device.work import WorkItem

        samples = qpu.run_batch([WorkItem(circuit=BELL, repetitions=shots, params=({},))])
        time.sleep(hold)
        return [int(s["m"].sum()) for s in samples[0]]

    def classical_step(state: int, measured: list) -> int:
        time.sleep(classical)
        return state + sum(measured)

    return HybridLoop(name="scale", initial_state=lambda: 0, quantum_step=quantum_step,
                      classical_step=classical_step, iterations=iterations, seed=5)
