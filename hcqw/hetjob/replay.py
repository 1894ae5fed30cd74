"""Deterministic resume of a per-call driver by replay.

With ``HCQW_PER_CALL_RECORDS`` set (``hcqw slurm submit`` sets ``<run dir>/calls``) the driver's
leases are numbered in the order it opens them, and each call that ends well is kept as a signed
record ``call-NNNNN.ckpt`` (``hcqw.checkpoint``: the user's key, bound to its file name, the workflow
id and the driver's command line): the lease's seed, a digest of every request (circuit JSON, shots,
sweep points; reseeds too) and every result. A re-run of the same driver under the same workflow id
replays each call that has a record -- no qpu job, no device -- and goes on from the first call
without one, so a driver whose optimiser depends only on its inputs and results ends where an
undisturbed run would have. A record that does not match -- other seed, another request, more or
fewer runs, another command line, copied over another call's -- raises ``CheckpointMismatch``:
never re-run, never mixed. A call cut off (the driver killed, a run raising) has no record and
runs on the device again.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hcqw.checkpoint import Place, load_checkpoint, save_checkpoint
from hcqw.codec import circuit_to_json
from hcqw.errors import CheckpointMismatch

RECORD = "call-{:05d}.ckpt"
_counters: dict[Path, int] = {}  # calls opened so far by this process, per records directory


def request_digest(kind: str, circuit: Any = None, repetitions: int = 0, params: Any = None) -> str:
    """What a run asks the device, as a digest: the circuit's Cirq JSON, the shots, the resolved sweep points."""
    from hcqw.device.work import resolve_sweep

    if kind == "reseed":
        text = json.dumps({"reseed": circuit})
    else:
        # Cirq JSON text passes through: a driver sending text pays no cirq import on its first call (QPU held)
        circuit_json = circuit if isinstance(circuit, str) else circuit_to_json(circuit)
        text = json.dumps({"circuit": circuit_json, "repetitions": repetitions, "params": list(resolve_sweep(params))},
                          sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def batch_digest(items: Any) -> str:
    """A batch of work items (``run_batch``) as one request."""
    digests = [request_digest("run", item.circuit, item.repetitions, list(item.params)) for item in items]
    return hashlib.sha256(json.dumps(digests).encode()).hexdigest()


def command_fingerprint(argv: Sequence[str] | None = None) -> str:
    """The driver's command line (script and arguments) as the records' run fingerprint."""
    return hashlib.sha256(json.dumps(list(sys.argv if argv is None else argv)).encode()).hexdigest()[:32]


class CallRecords:
    """The signed records of one driver's calls in ``directory`` (``place``: its workflow and command line)."""

    def __init__(self, directory: Path, place: Place):
        self.directory = Path(directory)
        self.place = place

    def next_call(self) -> int:
        """The number of the call being opened now (1, 2, ...), counted per process."""
        _counters[self.directory] = _counters.get(self.directory, 0) + 1
        return _counters[self.directory]

    def path(self, call: int) -> Path:
        return self.directory / RECORD.format(call)

    def load(self, call: int) -> dict | None:
        path = self.path(call)
        if not path.exists():
            return None
        record, _ = load_checkpoint(path, place=self.place)
        return record

    def save(self, call: int, record: dict) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        save_checkpoint(self.path(call), record, workflow=self.place.workflow, iteration=call, producer="per-call",
                        fingerprint=self.place.fingerprint)


class ReplayLease:
    """A recorded call played back: each run must ask what was recorded, and gets the recorded result."""

    def __init__(self, record: dict, path: Path, workflow: str, node: str):
        self._runs, self._path = record["runs"], path
        self._next = 0
        self.workflow, self.node = workflow, node
        self.is_open = True

    def _replay(self, digest: str, what: str) -> Any:
        if self._next >= len(self._runs):
            raise CheckpointMismatch(self._path, f"records {len(self._runs)} run(s) for this call; the driver asks for "
                                                 f"more ({what}): it is not the run that wrote it. Use a new workflow id")
        recorded = self._runs[self._next]
        if recorded["request"] != digest:
            raise CheckpointMismatch(self._path, f"run {self._next + 1} of this call was recorded for another request "
                                                 f"than this {what} (circuit, shots, sweep or seed differ): refusing to "
                                                 "mix two runs. Use a new workflow id")
        self._next += 1
        return recorded["result"]

    def run(self, circuit: Any, repetitions: int, params: Any = None) -> list:
        return self._replay(request_digest("run", circuit, repetitions, params), "run")

    def run_batch(self, items: Any) -> list:
        return self._replay(batch_digest(items), "batch")

    def reseed(self, seed: int | None) -> None:
        self._replay(request_digest("reseed", seed), "reseed")

    def close(self, failed: bool = False) -> None:
        if not self.is_open:
            return
        self.is_open = False
        if not failed and self._next != len(self._runs):
            raise CheckpointMismatch(self._path, f"records {len(self._runs)} run(s) for this call; the driver made "
                                                 f"{self._next}: it is not the run that wrote it. Use a new workflow id")

    def __enter__(self) -> "ReplayLease":
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        self.close(failed=exc_type is not None)


class RecordingLease:
    """A live call that leaves its signed record when it ends well (every run returned)."""

    def __init__(self, lease: Any, records: CallRecords, call: int, seed: int | None):
        self._lease, self._records, self._call, self._seed = lease, records, call, seed
        self._runs: list[dict] = []
        self._failed = False

    def __getattr__(self, name: str) -> Any:  # workflow, node, acquired_at, limits, position...
        return getattr(self._lease, name)

    def _recorded(self, digest: str, call: Any) -> Any:
        try:
            result = call()
        except BaseException:
            self._failed = True
            raise
        self._runs.append({"request": digest, "result": result})
        return result

    def run(self, circuit: Any, repetitions: int, params: Any = None) -> list:
        digest = request_digest("run", circuit, repetitions, params)
        return self._recorded(digest, lambda: self._lease.run(circuit, repetitions, params))

    def run_batch(self, items: Any) -> list:
        return self._recorded(batch_digest(items), lambda: self._lease.run_batch(items))

    def reseed(self, seed: int | None) -> None:
        self._recorded(request_digest("reseed", seed), lambda: self._lease.reseed(seed))

    def close(self) -> None:
        self._lease.close()
        if not self._failed and not self._records.path(self._call).exists():
            self._records.save(self._call, {"seed": self._seed, "runs": self._runs})

    def __enter__(self) -> "RecordingLease":
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is not None:
            self._failed = True
        self.close()


def check_seed(record: dict, seed: int | None, path: Path) -> None:
    if record["seed"] != seed:
        raise CheckpointMismatch(path, f"was recorded with seed {record['seed']}, this call asks for seed {seed}: "
                                       "refusing to mix two runs. Use a new workflow id")
