"""hcqw: hybrid classical-quantum workflows on HPC.

The engine-neutral core. Where to look:

- ``hcqw.device``      the quantum device interface and its simulators (qsimcirq, cirq, modelled)
- ``hcqw.codec``       Cirq JSON + numpy wire format for circuits and results (never pickles)
- ``hcqw.checkpoint``  signed cloudpickle checkpoint artifacts
- ``hcqw.workflow``    the hybrid-loop description and the DAG it becomes
- ``hcqw.embedded``    the embedded default: run the DAG on one machine
- ``hcqw.metrics``     the QPU timeline (JSON lines)

Heavy imports (cirq, qsimcirq) happen inside the submodules that need them, so
``import hcqw`` stays cheap for job scripts and the CLI.
"""

__version__ = "0.1.0"
