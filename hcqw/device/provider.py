"""The device contract every engine runs quantum steps through.

A ``DeviceProvider`` hands out ``DeviceLease``s: ``acquire`` waits in the device's queue and
returns an open lease, and closing the lease ends the quantum block. The implementations sit
beside their transport:

- ``hcqw.device.local.LocalDevice`` (and ``hcqw.device.hold.HeldDevice`` inside a held step):
  the machine-local device, one holder at a time machine-wide;
- ``hcqw.service.device.ServiceDevice``: a session on a running QPU service, which interleaves
  the work of all open sessions;
- ``hcqw.hetjob.device.GatewayDevice``: the gateway of the quantum node's own hetjob; closing the
  lease frees the qpu component.

``hcqw.qpu.current_device`` chooses one for the current process.
"""

from __future__ import annotations

from typing import Any, Protocol


class DeviceLease(Protocol):
    """What a quantum step gets: ``hcqw.device.QPU`` or a QPU-service session."""

    def run(self, circuit: Any, repetitions: int, params: Any = None) -> list: ...
    def run_batch(self, items: Any) -> list: ...
    def close(self) -> None: ...


class DeviceProvider(Protocol):
    """Hands out device leases to quantum nodes."""

    def acquire(self, workflow: str, node: str, timeout: float | None = None, metrics: Any = None,
                seed: int | None = None) -> DeviceLease: ...
