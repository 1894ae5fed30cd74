"""A device for scheduling benchmarks: samples like qsim, takes as long as a real QPU would.

A real QPU does not burn the cluster's cores, but two simulators plus the classical work of a
benchmark do on a small machine, and their run time depends on that machine, not on a QPU. This
backend computes its samples with qsim (the same samples as the ``qsim`` backend for the same
seed, on one thread by default) and then keeps the device busy, sleeping, until a modelled
duration has passed since the execution started:

    duration = circuits × circuit overhead + shots × shot time

where every sweep point of a work item is one circuit (a parameter change means new pulses to
load on real hardware). The defaults are typical of superconducting QPUs: 50 ms per circuit for
the control stack to load and arm it, 200 µs per shot (readout plus reset, a 5 kHz repetition
rate). Set them per backend (``circuit_overhead=``, ``shot_time=``, seconds) or for every process
with ``$HCQW_MODELLED_CIRCUIT_OVERHEAD`` / ``$HCQW_MODELLED_SHOT_TIME`` (what ``hcqw device serve
--simulator modelled`` and a job's gateway read). If qsim itself takes longer than the model, the
execution takes that long: the model is a lower bound.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

from hcqw import environment
from hcqw.device.qsim import QsimBackend
from hcqw.device.work import Samples, WorkItem
from hcqw.errors import DeviceError

DEFAULT_CIRCUIT_OVERHEAD = 0.05  # s per circuit (sweep point)
DEFAULT_SHOT_TIME = 200e-6  # s per shot


def _seconds(value: float | str | None, env: str, default: float) -> float:
    if value is None:
        value = os.environ.get(env) or default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise DeviceError(f"modelled device: {env.lower().removeprefix('hcqw_modelled_')} must be a number of "
                          f"seconds, got {value!r} (set it with {env})") from None
    if not seconds >= 0:  # also refuses NaN
        raise DeviceError(f"modelled device: {env.lower().removeprefix('hcqw_modelled_')} must be >= 0 seconds, "
                          f"got {value!r} (set it with {env})")
    return seconds


class ModelledBackend(QsimBackend):
    name = "modelled"

    def __init__(self, threads: int | None = None, seed: int | None = None, max_qubits: int = 30,
                 max_repetitions: int = 1_000_000, circuit_overhead: float | None = None,
                 shot_time: float | None = None):
        # One thread unless told otherwise: the point of this device is not to compete for the cores.
        super().__init__(threads=threads or 1, seed=seed, max_qubits=max_qubits, max_repetitions=max_repetitions)
        self.circuit_overhead = _seconds(circuit_overhead, environment.MODELLED_CIRCUIT_OVERHEAD, DEFAULT_CIRCUIT_OVERHEAD)
        self.shot_time = _seconds(shot_time, environment.MODELLED_SHOT_TIME, DEFAULT_SHOT_TIME)

    def __repr__(self) -> str:
        return (f"ModelledBackend(circuit_overhead={self.circuit_overhead:g} s, shot_time={self.shot_time:g} s, "
                f"threads={self.threads})")

    def duration(self, items: Sequence[WorkItem]) -> float:
        """How long a real device would be busy with ``items``."""
        circuits = sum(len(item.params) for item in items)
        shots = sum(len(item.params) * item.repetitions for item in items)
        return circuits * self.circuit_overhead + shots * self.shot_time

    def execute(self, items: Sequence[WorkItem]) -> list[list[Samples]]:
        started = time.monotonic()
        results = super().execute(items)  # validates first: a refused batch takes no device time
        remaining = started + self.duration(items) - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)  # busy, as the device would be, without using a core
        return results
