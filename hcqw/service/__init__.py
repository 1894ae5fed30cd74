"""The QPU service: the process that owns the quantum device on the service node.

One service plays both the task manager (dispatcher) of Quantum Inspire and the
quantum-side listener of the MPI hetjob design: clients open sessions, send work items
(Cirq JSON circuits, sweeps, repetitions) and get numpy results back, over ZeroMQ or MPI
DPM with the same protocol.

Modules, each replaceable on its own:

- ``protocol``: message types, validation, versioning (JSON header + raw numpy frames).
- ``policy``: queue policies (fifo, round-robin per workflow or per user, priority).
- ``dispatcher``: the loop that owns backend, status, queue, sessions and metrics.
- ``auth``: who may open sessions and use control (MUNGE via ``hcqw.identity``, operators);
  ``limits``: bounded work per request and per user; ``executor``: the child process that runs
  long jobs so the loop keeps serving.
- ``transport`` / ``transport_zmq`` / ``transport_mpi``: moving frames.
- ``server``: the service process; ``client``: ``ServiceClient`` and its ``ServiceQPU`` lease;
  ``device``: ``ServiceDevice``, the ``hcqw.device.provider`` contract over a running service.
- ``stats``: accounting over the metrics log.

Its commands, ``hcqw device ...``, are ``hcqw.cli.device``.
"""

__all__ = ["ServiceClient", "ServiceError", "ServiceQPU"]


def __getattr__(name: str):
    # Lazy, so ``hcqw.cli.device`` (imported whenever the hcqw CLI parser is built) stays light.
    if name in __all__:
        from hcqw.service import client

        return getattr(client, name)
    raise AttributeError(name)
