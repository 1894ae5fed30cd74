"""Work items: OpenQASM text is parsed where a circuit is built, anything else passes as it is; and the
results of QASM programs through ``open_qpu()`` on the embedded default (real qsimcirq)."""

from __future__ import annotations

import subprocess
import sys

import cirq
import numpy as np
import pytest

from hcqw import environment
from hcqw.device.work import WorkItem
from hcqw.errors import QasmError
from hcqw.qpu import open_qpu
from tests.support import ROOT

BELL = {
    2: 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nbarrier q;\n'
       "measure q[0] -> c[0];\nmeasure q[1] -> c[1];\n",
    3: '// a Bell pair\nOPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\n'
       "c = measure q;\n",
}


@pytest.fixture
def local_default(monkeypatch):
    """open_qpu() on this machine's embedded default, whatever the calling shell has set."""
    for name in (environment.GATEWAY_ADDRESS_FILE, environment.DEVICE_ADDRESS, environment.DEVICE,
                 environment.DEVICE_HOLD, environment.SIMULATOR):
        monkeypatch.delenv(name, raising=False)


def test_openqasm_text_becomes_a_circuit_and_cirq_json_text_stays_text():
    item = WorkItem.build(BELL[3], 10)
    assert isinstance(item.circuit, cirq.Circuit)
    json_text = cirq.to_json(cirq.Circuit(cirq.H(cirq.LineQubit(0))))
    assert WorkItem.build(json_text, 10).circuit is json_text
    with pytest.raises(QasmError, match="line 3"):
        WorkItem.build("OPENQASM 3.0;\nqubit q;\nif (true) { }\n", 10)


def test_building_a_json_work_item_does_not_load_the_parser_or_cirq():
    code = ("import sys\nfrom hcqw.device.work import WorkItem\nWorkItem.build('{\"cirq_type\": \"Circuit\"}', 1)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('cirq', 'sympy', 'hcqw.qasm.'))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("dialect", [2, 3])
def test_a_bell_pair_in_openqasm_runs_on_the_embedded_default(local_default, dialect):
    with open_qpu(seed=11) as qpu:
        (result,) = qpu.run(BELL[dialect], repetitions=2000)
    samples = result.measurements["c"]
    assert list(result.measurements) == ["c"] and samples.shape == (2000, 2)
    assert np.all(samples[:, 0] == samples[:, 1])
    assert 0.45 < samples[:, 0].mean() < 0.55


def test_parameters_sweep_and_mid_circuit_measurement_and_reset_run(local_default):
    text = ('OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float[64] _θ_0_;\nqubit[2] q;\nbit[2] c;\nbit[1] d;\n'
            "rx(2 * _θ_0_) q[0];\nc[0] = measure q[0];\nreset q[0];\nx q[0];\nc[1] = measure q[0];\n"
            "x q[1];\nd[0] = measure q[1];\n")
    with open_qpu(seed=5) as qpu:
        results = qpu.run(text, repetitions=500, params=[{"_θ_0_": 0.0}, {"_θ_0_": np.pi / 2}])
    assert sorted(results[0].measurements) == ["c[0]", "c[1]", "d"]
    assert results[0].measurements["c[0]"].sum() == 0 and results[1].measurements["c[0]"].sum() == 500
    for result in results:
        assert np.all(result.measurements["c[1]"] == 1) and np.all(result.measurements["d"] == 1)
