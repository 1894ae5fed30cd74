"""Bounded work: what one request, one work item and one user may ask of a shared QPU service.

Every limit is checked when a request arrives, before any work starts, and a request beyond
one is refused with an error naming the limit, the value asked for and the option that
raises it. The defaults let every hcqw workflow and benchmark through and stop a single
small message from asking for gigabytes of samples or hours of device time.

Execution time is *modelled*, not timed: a state-vector simulation costs about
``2**qubits x operations`` amplitude updates per sweep point (per shot as well when a
measurement is not terminal, since the simulator then reruns the circuit for every shot),
plus the sampling. The decoder counts the operations with every ``CircuitOperation``'s
repetitions expanded (``hcqw.codec.circuit.Shape``): a repeated sub-circuit is no cheaper. ``amplitude_op_seconds`` is measured for qsim on one thread on this
project's VMs (about 1.2 ns, rounded up); a slower backend (``cirq``) should be given a
larger one. The model decides too whether an item runs in the service loop's own process
(short) or in the executor process (``hcqw.service.executor``), so the loop stays responsive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hcqw.codec.circuit import Shape
from hcqw.service import protocol as P

if TYPE_CHECKING:
    from hcqw.device.work import WorkItem


@dataclass(frozen=True)
class WorkLimits:
    item_shots: int = 2_000_000  # repetitions x sweep points of one work item
    run_shots: int = 8_000_000  # the same summed over one run request
    result_bytes: int = 256 * 1024 * 1024  # sample bytes one run request may return
    qubits: int | None = None  # below the device's own limit, if set
    item_seconds: float = 120.0  # modelled device time of one work item
    run_seconds: float = 600.0  # modelled device time of one run request
    sessions_per_user: int = 64  # open sessions of one user
    queued_items_per_user: int = 8192  # work items of one user waiting in the queue
    amplitude_op_seconds: float = 2e-9
    sample_bit_seconds: float = 2e-9

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("item_shots", "run_shots", "result_bytes", "qubits",
                                                        "item_seconds", "run_seconds", "sessions_per_user",
                                                        "queued_items_per_user")}


class LimitExceeded(P.ProtocolError):
    """A request refused at one of the limits; ``limit`` names it (a ``WorkLimits`` field), for the
    service's metrics (``hcqw.service.exporter``)."""

    def __init__(self, limit: str, code: str, message: str, request_id: Any = None):
        super().__init__(code, message, request_id)
        self.limit = limit


@dataclass
class Cost:
    """What running some work items takes."""

    shots: int = 0
    result_bytes: int = 0
    seconds: float = 0.0

    def __iadd__(self, other: "Cost") -> "Cost":
        self.shots += other.shots
        self.result_bytes += other.result_bytes
        self.seconds += other.seconds
        return self


def item_cost(shape: Shape, item: WorkItem, limits: WorkLimits) -> Cost:
    """The modelled cost of one work item (see the module docstring)."""
    points = len(item.params)
    shots = item.repetitions * points
    simulations = points * (1 if shape.terminal else item.repetitions)
    seconds = (simulations * (2 ** shape.qubits) * shape.operations * limits.amplitude_op_seconds
               + shots * max(1, shape.measured_bits) * limits.sample_bit_seconds)
    return Cost(shots=shots, result_bytes=shots * shape.measured_bits, seconds=seconds)


def check_item(shape: Shape, item: WorkItem, index: int, limits: WorkLimits) -> Cost:
    """``ProtocolError(too_large)`` if one item is beyond the limits; else its cost."""
    where = f"work item {index}"
    if limits.qubits is not None and shape.qubits > limits.qubits:
        raise LimitExceeded("qubits", P.E_TOO_LARGE,
                            f"{where}: {shape.qubits} qubits exceed this service's limit of "
                            f"{limits.qubits} (hcqw device serve --max-qubits)")
    cost = item_cost(shape, item, limits)
    if cost.shots > limits.item_shots:
        raise LimitExceeded("item_shots", P.E_TOO_LARGE,
                            f"{where}: {item.repetitions} repetitions x {len(item.params)} sweep "
                            f"points = {cost.shots} shots exceed the limit of {limits.item_shots} "
                            "per work item; split it (hcqw device serve --max-item-shots)")
    if cost.seconds > limits.item_seconds:
        raise LimitExceeded("item_seconds", P.E_TOO_LARGE,
                            f"{where}: modelled device time {cost.seconds:.1f} s exceeds the limit "
                            f"of {limits.item_seconds:g} s per work item; use fewer qubits, sweep "
                            "points or (non-terminal measurements) repetitions "
                            "(hcqw device serve --max-item-seconds)")
    return cost


def check_run(total: Cost, limits: WorkLimits) -> None:
    """``ProtocolError(too_large)`` if one run request as a whole is beyond the limits."""
    if total.shots > limits.run_shots:
        raise LimitExceeded("run_shots", P.E_TOO_LARGE,
                            f"run: {total.shots} shots in one request exceed the limit of "
                            f"{limits.run_shots}; send fewer items per run "
                            "(hcqw device serve --max-run-shots)")
    if total.result_bytes > limits.result_bytes:
        raise LimitExceeded("result_bytes", P.E_TOO_LARGE,
                            f"run: {total.result_bytes} bytes of samples exceed the limit of "
                            f"{limits.result_bytes} per request; send fewer shots per run "
                            "(hcqw device serve --max-result-bytes)")
    if total.seconds > limits.run_seconds:
        raise LimitExceeded("run_seconds", P.E_TOO_LARGE,
                            f"run: modelled device time {total.seconds:.1f} s exceeds the limit of "
                            f"{limits.run_seconds:g} s per request; send fewer items per run "
                            "(hcqw device serve --max-run-seconds)")
