"""Qiskit on hcqw: ``Sampler`` (BaseSamplerV2), ``Estimator`` (BaseEstimatorV2), ``Backend`` (BackendV2)
and the converter ``to_cirq`` (Qiskit circuit -> Cirq, on the client). Needs ``pip install 'hcqw[qiskit]'``.

Each primitive ``run()`` and each ``Backend.run`` is one device lease (``hcqw.qpu.open_qpu``): inside a
quantum node, the qpu component is freed when it ends. See docs/qiskit.md.
"""

from hcqw.qiskit.backend import Backend, HcqwJob
from hcqw.qiskit.convert import BASIS, ConvertedCircuit, UnsupportedCircuit, to_cirq
from hcqw.qiskit.estimator import Estimator
from hcqw.qiskit.sampler import Sampler

__all__ = ["BASIS", "Backend", "ConvertedCircuit", "Estimator", "HcqwJob", "Sampler", "UnsupportedCircuit", "to_cirq"]
