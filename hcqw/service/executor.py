"""The executor process: long device executions run here, so the service loop keeps serving.

qsimcirq holds the GIL for the whole of a simulation (measured: a thread ticking every 1 ms
got no turn during a 0.85 s qsim run), so a worker *thread* would leave the socket loop as
stalled as running inline. The executor is a child process forked when the service starts,
after the backend is built and before any socket or MPI port exists: it inherits the hot
simulator (no second import), and runs one job at a time, in the order the dispatcher hands
them over, while the loop answers heartbeats, status and new requests of every other user.

Short jobs (modelled below ``INLINE_SECONDS``, see ``hcqw.service.limits``) still run inline in
the loop: a hand-over to another process costs more than they take, and they cannot delay
anyone's heartbeat noticeably. Whatever crosses the pipe is our own process's data (decoded
work items out, sample arrays back), never a client's bytes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import signal
from multiprocessing.connection import Connection
from typing import Any, Sequence

from hcqw.device.backend import QuantumBackend, batch_seed
from hcqw.device.work import WorkItem
from hcqw.errors import CircuitError

log = logging.getLogger(__name__)

#: Jobs modelled to take less than this run inline in the service loop.
INLINE_SECONDS = 0.02
_EXECUTOR_STREAM = 2**40  # "batch" number of the executor's own RNG stream under a service seed


class ExecutorGone(RuntimeError):
    """The executor process died (e.g. killed for memory) while running a job."""


def _serve(backend: QuantumBackend, conn: Connection, theirs: Connection, seed: int | None) -> None:
    theirs.close()  # the fork copied the service's end too: keep it open and we never see EOF
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service stops us by closing the pipe
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # The fork copied the parent's RNG state: without a reseed, unseeded jobs here would draw the
    # very numbers the loop's inline jobs draw.
    backend.reseed(secrets.randbits(32) if seed is None else batch_seed(seed, _EXECUTOR_STREAM))
    while True:
        try:
            items, seed = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if seed is not None:
                backend.reseed(seed)
            conn.send(("ok", backend.execute(items)))
        except CircuitError as err:
            conn.send(("circuit", str(err)))
        except Exception as err:  # noqa: BLE001 - reported to the client, the executor lives on
            conn.send(("error", f"{type(err).__name__}: {err}"))


class Executor:
    """One child process running the backend's jobs, one at a time."""

    def __init__(self, backend: QuantumBackend, seed: int | None = None):
        """``seed``: the service's own seed (``--seed``), from which the executor's RNG is derived."""
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(backend, child, self._conn, seed), name="hcqw-executor",
                                        daemon=True)
        self._process.start()
        child.close()
        self.busy = False

    def submit(self, items: Sequence[WorkItem], seed: int | None) -> None:
        assert not self.busy, "the executor runs one job at a time"
        self._conn.send((list(items), seed))
        self.busy = True

    def result(self) -> Any:
        """The finished job's results, or ``None`` while it runs; raises what the job raised."""
        if not self.busy or not self._conn.poll(0):
            if self.busy and not self._process.is_alive() and not self._conn.poll(0):
                self.busy = False
                raise ExecutorGone(f"the executor process died (exit code {self._process.exitcode})")
            return None
        self.busy = False
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError) as err:
            raise ExecutorGone(f"the executor process died: {err}") from None
        if kind == "ok":
            return value
        if kind == "circuit":
            raise CircuitError(value)
        raise RuntimeError(value)

    def close(self) -> None:
        self._conn.close()
        self._process.join(2)
        if self._process.is_alive():
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.join(2)
