"""``hcqw_config``'s token handling, checked against what Parsl itself writes: Parsl logs the repr of
the whole Config (providers and their options) to ``parsl.log``; a token must not be in it."""

from __future__ import annotations

import time

import parsl

from parsl_hcqw.config import hcqw_config
from tests.support.rest_recorder import RestRecorder

SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJtZSJ9.cGFyc2wtbG9nLXNlY3JldA"


def test_a_token_given_to_hcqw_config_is_used_but_never_written_by_parsl(tmp_path, job_env):
    run_dir = tmp_path / "runinfo"
    with RestRecorder() as slurmrestd:
        config = hcqw_config(slurm=True, backend="rest", run_dir=str(run_dir), workflow="tok",
                             backend_options={"url": slurmrestd.url, "token": SECRET}, strategy_period=0.2)
        assert SECRET not in repr(config)
        with parsl.load(config):
            deadline = time.monotonic() + 60
            while not any(m == "POST" for m, _, _ in slurmrestd.seen):  # Parsl's scaling submits the cpu block
                assert time.monotonic() < deadline, f"Parsl submitted no block: {slurmrestd.seen}"
                time.sleep(0.1)
    assert slurmrestd.tokens() and set(slurmrestd.tokens()) == {SECRET}  # the token went to slurmrestd...
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "parsl.log" for p in written)
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []  # ...and nowhere into Parsl's files
