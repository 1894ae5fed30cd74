"""Checkpoint artifacts: round trip, atomicity under a killed writer, and refusal of bad files."""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from dataclasses import asdict

import cloudpickle
import numpy as np
import pytest

from hcqw.checkpoint import (
    MAGIC, CheckpointHeader, Place, key_id, load_checkpoint, load_key, read_header, save_checkpoint,
)
from hcqw.errors import CheckpointError, CheckpointMismatch
from tests.support import ROOT


def write(path: Path, obj, **kw):
    return save_checkpoint(path, obj, workflow=kw.pop("workflow", "wf"), iteration=kw.pop("iteration", 1),
                           producer=kw.pop("producer", "c0001"), **kw)


def test_round_trip_keeps_state_and_header(tmp_path):
    state = {"theta": np.arange(4.0), "history": [1.5, -2.0], "fn": lambda x: x + 1}
    header = write(tmp_path / "s.ckpt", state, meta={"converged": True})
    loaded, read = load_checkpoint(tmp_path / "s.ckpt", workflow="wf")
    np.testing.assert_array_equal(loaded["theta"], state["theta"])
    assert loaded["history"] == [1.5, -2.0] and loaded["fn"](1) == 2
    assert read == header
    assert (read.workflow, read.iteration, read.producer, read.meta) == ("wf", 1, "c0001", {"converged": True})
    assert len(read.payload_sha256) == 64 and read.created > 0
    assert (os.stat(tmp_path / "s.ckpt").st_mode & 0o777) == 0o600


def test_key_created_private_on_first_use(tmp_path, monkeypatch):
    key_file = tmp_path / "cfg" / "checkpoint.key"
    monkeypatch.setenv("HCQW_CHECKPOINT_KEY", str(key_file))
    key = load_key()
    assert len(key) == 32 and key_file.read_bytes() == key
    assert (key_file.stat().st_mode & 0o777) == 0o600
    assert load_key() == key


def _race_for_key(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        results.put(load_key(Path(path)).hex())
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"error: {exc}")


def test_processes_creating_the_key_at_once_all_get_the_same_full_key(tmp_path):
    """Two workflows started together on a fresh machine race to create the key (a CI failure)."""
    ctx = multiprocessing.get_context("fork")
    workers = 8
    for attempt in range(25):
        path = tmp_path / f"race{attempt}" / "checkpoint.key"
        barrier, results = ctx.Barrier(workers), ctx.Queue()
        procs = [ctx.Process(target=_race_for_key, args=(str(path), barrier, results)) for _ in range(workers)]
        for proc in procs:
            proc.start()
        keys = [results.get(timeout=30) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
        assert len(set(keys)) == 1 and keys[0] == path.read_bytes().hex(), keys
        assert [p.name for p in path.parent.iterdir()] == ["checkpoint.key"]  # no temp file left behind


def test_key_readable_by_others_is_refused(tmp_path, monkeypatch):
    key_file = tmp_path / "k"
    key_file.write_bytes(os.urandom(32))
    key_file.chmod(0o644)
    monkeypatch.setenv("HCQW_CHECKPOINT_KEY", str(key_file))
    with pytest.raises(CheckpointError, match="chmod 600"):
        load_key()


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.ckpt: missing"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_wrong_workflow_is_refused(tmp_path):
    write(tmp_path / "s.ckpt", 1, workflow="alice-run")
    with pytest.raises(CheckpointError, match="belongs to workflow 'alice-run'"):
        load_checkpoint(tmp_path / "s.ckpt", workflow="bob-run")


MARKER_PAYLOAD = "import pathlib; pathlib.Path({marker!r}).write_text('pwned')"


class Exploit:
    """Unpickling this runs code: the payload an attacker would plant."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (MARKER_PAYLOAD.format(marker=self.marker),))


def planted(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A genuine checkpoint, the marker an exploit would create, and an exploit pickle."""
    path = tmp_path / "s.ckpt"
    write(path, {"ok": 1})
    marker = tmp_path / "pwned"
    return path, marker, pickle.dumps(Exploit(marker))


def splice_payload(data: bytes, payload: bytes) -> bytes:
    header_len = int.from_bytes(data[len(MAGIC):len(MAGIC) + 4], "big")
    return data[:len(MAGIC) + 4 + header_len + 32] + payload


@pytest.mark.parametrize("attack", ["tampered", "truncated", "unsigned", "foreign-key", "header-edit"])
def test_bad_files_are_refused_and_malicious_payload_never_runs(tmp_path, monkeypatch, attack):
    path, marker, exploit = planted(tmp_path)
    data = path.read_bytes()
    if attack == "tampered":  # attacker swaps the payload but cannot re-sign; sizes kept equal
        path.write_bytes(splice_payload(data, exploit))
        expected = "truncated or padded|signature mismatch"
    elif attack == "truncated":
        path.write_bytes(data[:-5])
        expected = "truncated"
    elif attack == "unsigned":  # a plain pickle where a checkpoint should be
        path.write_bytes(exploit)
        expected = "not a signed hcqw checkpoint"
    elif attack == "foreign-key":  # a validly signed file, but with someone else's key
        other = tmp_path / "other.key"
        other.write_bytes(os.urandom(32))
        other.chmod(0o600)
        save_checkpoint(path, Exploit(marker), workflow="wf", iteration=1, producer="x", key=other.read_bytes())
        expected = "signed with another key"
    else:  # edit the header (e.g. the iteration) and keep the signature
        path.write_bytes(data.replace(b'"iteration": 1', b'"iteration": 7'))
        expected = "signature mismatch"
    with pytest.raises(CheckpointError, match=expected) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_tampered_payload_of_same_size_fails_signature(tmp_path):
    path, marker, _ = planted(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the payload
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="signature mismatch"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="signature mismatch"):
        read_header(path)


WRITER = textwrap.dedent("""
    import os, sys
    from hcqw.checkpoint import save_checkpoint
    real_fsync = os.fsync
    def stall(fd):
        print("writing", flush=True)   # the temp file is written but not yet renamed
        import time; time.sleep(60)
    os.fsync = stall
    save_checkpoint(sys.argv[1], {"version": "new", "blob": b"x" * 5_000_000},
                    workflow="wf", iteration=2, producer="c0002")
""")


def test_writer_killed_mid_write_leaves_previous_checkpoint(tmp_path):
    path = tmp_path / "state.ckpt"
    write(path, {"version": "old"})
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline().strip() == "writing"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    loaded, header = load_checkpoint(path)
    assert loaded == {"version": "old"} and header.iteration == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "state.ckpt"]
    assert leftovers and all(name.startswith(".state.ckpt.tmp-") for name in leftovers)  # only the dead temp file


RUN = Place("wf", "f1f1f1f1f1f1f1f1")


def bound(path: Path, obj, iteration: int, fingerprint: str = RUN.fingerprint, workflow: str = "wf"):
    return save_checkpoint(path, obj, workflow=workflow, iteration=iteration, producer=f"c{iteration:04d}",
                           fingerprint=fingerprint)


def test_a_checkpoint_loads_at_its_own_place(tmp_path):
    bound(tmp_path / "state-0005.ckpt", {"i": 5}, 5)
    obj, header = load_checkpoint(tmp_path / "state-0005.ckpt", place=RUN)
    assert obj == {"i": 5} and (header.artifact, header.fingerprint) == ("state-0005.ckpt", RUN.fingerprint)
    assert read_header(tmp_path / "state-0005.ckpt", place=RUN) == header


def test_an_earlier_iteration_copied_over_a_later_one_is_refused_unloaded(tmp_path):
    """Both files are genuine and signed with the user's key: only the binding tells them apart."""
    bound(tmp_path / "state-0001.ckpt", Exploit(tmp_path / "pwned"), 1)
    bound(tmp_path / "state-0005.ckpt", {"i": 5}, 5)
    (tmp_path / "state-0005.ckpt").write_bytes((tmp_path / "state-0001.ckpt").read_bytes())  # the roll-back
    with pytest.raises(CheckpointMismatch) as err:
        load_checkpoint(tmp_path / "state-0005.ckpt", place=RUN)
    assert "state-0005.ckpt: was written as state-0001.ckpt (iteration 1, by c0001)" in str(err.value)
    assert "Delete state-0005.ckpt" in str(err.value)
    assert not (tmp_path / "pwned").exists()  # refused before unpickling


def test_swapped_checkpoints_of_one_iteration_are_refused(tmp_path):
    state, quantum = tmp_path / "state-0003.ckpt", tmp_path / "quantum-0003.ckpt"
    bound(state, "state", 3)
    bound(quantum, "samples", 3)
    state_bytes, quantum_bytes = state.read_bytes(), quantum.read_bytes()
    state.write_bytes(quantum_bytes)
    quantum.write_bytes(state_bytes)
    for path, was in ((state, "quantum-0003.ckpt"), (quantum, "state-0003.ckpt")):
        with pytest.raises(CheckpointMismatch, match=f"was written as {was}"):
            read_header(path, place=RUN)


def test_a_checkpoint_of_a_run_with_other_parameters_is_refused(tmp_path):
    bound(tmp_path / "state-0002.ckpt", 2, 2, fingerprint="0000000000000000")
    with pytest.raises(CheckpointMismatch, match="another loop or other parameters") as err:
        load_checkpoint(tmp_path / "state-0002.ckpt", place=RUN)
    assert "0000000000000000" in str(err.value) and RUN.fingerprint in str(err.value)
    bound(tmp_path / "state-0003.ckpt", 3, 3, workflow="other-run")
    with pytest.raises(CheckpointMismatch, match="belongs to workflow 'other-run', not 'wf'"):
        load_checkpoint(tmp_path / "state-0003.ckpt", place=RUN)


def test_a_checkpoint_without_a_binding_is_refused_where_a_place_is_expected(tmp_path):
    """Written before checkpoints were bound (no artifact in the signed header): loadable, never resumed from."""
    path = tmp_path / "state-0001.ckpt"
    key = load_key()
    legacy = CheckpointHeader(workflow="wf", iteration=1, producer="c0001", created=1.0, payload_sha256="",
                              payload_size=0, key_id=key_id(key))
    fields = {k: v for k, v in asdict(legacy).items() if k not in ("artifact", "fingerprint")}
    payload = cloudpickle.dumps(1)
    fields.update(payload_sha256=hashlib.sha256(payload).hexdigest(), payload_size=len(payload))
    header = json.dumps(fields, sort_keys=True).encode()
    signed = MAGIC + len(header).to_bytes(4, "big") + header
    path.write_bytes(signed + hmac.new(key, signed + payload, hashlib.sha256).digest() + payload)
    assert load_checkpoint(path, workflow="wf")[0] == 1
    with pytest.raises(CheckpointMismatch, match="no record of where it belongs"):
        load_checkpoint(path, place=RUN)
