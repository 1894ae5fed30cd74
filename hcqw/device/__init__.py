"""The quantum device interface.

Three layers, each replaceable on its own:

- ``QuantumBackend`` (``backend.py``): executes validated work items. qsimcirq is the
  default (``qsim.py``), cirq's own simulator the reference (``cirq_sim.py``), and
  ``modelled.py`` samples with qsim but takes a real QPU's time (for scheduling benchmarks);
  a vendor backend is one more module implementing the same three members.
- ``WorkItem`` / ``Samples`` (``work.py``): what crosses to and from the device.
- ``DeviceProvider`` / ``DeviceLease`` (``provider.py``): the contract every engine runs quantum
  steps through; its service and gateway implementations are ``hcqw.service.device`` and
  ``hcqw.hetjob.device``, and ``hcqw.qpu`` chooses one for the current process.
- ``LocalDevice`` (``local.py``): a backend plus status and machine-wide FIFO
  acquisition, handing out ``QPU`` leases to quantum steps.
- ``hold.py``: a qpu-marked step that an engine runs on this machine holds the local device
  for its whole run; its ``open_qpu`` lease is that hold, and closing it frees the device.
"""

from hcqw.device.backend import DeviceLimits, DeviceStatus, QuantumBackend, make_backend
from hcqw.device.local import QPU, LocalDevice
from hcqw.device.provider import DeviceLease, DeviceProvider
from hcqw.device.work import Samples, WorkItem

__all__ = [
    "DeviceLease",
    "DeviceLimits",
    "DeviceProvider",
    "DeviceStatus",
    "LocalDevice",
    "QPU",
    "QuantumBackend",
    "Samples",
    "WorkItem",
    "call_held",
    "hold_command",
    "make_backend",
]


def __getattr__(name: str):
    # Lazy: ``python -m hcqw.device.hold`` (the hold process engines start) imports this package
    # first, and must not find its own module imported already.
    if name in ("call_held", "hold_command"):
        from hcqw.device import hold

        return getattr(hold, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
