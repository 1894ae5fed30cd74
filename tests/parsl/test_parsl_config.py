"""``hcqw_config``: its backends (the same words as every adapter's, refused at once when unknown or
meaningless), and its token handling, checked against what Parsl itself writes: Parsl logs the repr of
the whole Config (providers and their options) to ``parsl.log``; a token must not be in it."""

from __future__ import annotations

import time

import parsl
import pytest
from parsl.providers import LocalProvider

from hcqw.slurm import BACKENDS
from parsl_hcqw import HetjobSlurmProvider, QpuJobExecutor, QpuSession
from parsl_hcqw.config import hcqw_config
from parsl_hcqw.executor import HeldQpuExecutor
from tests.support.rest_recorder import RestRecorder

SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJtZSJ9.cGFyc2wtbG9nLXNlY3JldA"


def test_a_token_given_to_hcqw_config_is_used_but_never_written_by_parsl(tmp_path, job_env):
    run_dir = tmp_path / "runinfo"
    with RestRecorder() as slurmrestd:
        config = hcqw_config(backend="rest", run_dir=str(run_dir), workflow="tok",
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_hcqw_config_takes_the_backends_of_every_adapter(backend):
    """The same words as ``--hcqw-backend`` and ``hcqw slurm run --backend``; building a SLURM config
    contacts no SLURM (``address=`` given, the provider opens its backend on first use)."""
    options = {"url": "http://127.0.0.1:6820"} if backend == "rest" else None
    config = hcqw_config(backend=backend, backend_options=options, address="127.0.0.1")
    cpu, qpu, *per_call = config.executors
    assert (cpu.label, qpu.label) == ("cpu", "qpu")
    # Tasks are pickles: the HighThroughputExecutors talk CurveZMQ, said explicitly (issue 24).
    assert all(executor.encrypted for executor in config.executors if hasattr(executor, "encrypted"))
    assert cpu.encrypted
    if backend == "local":
        assert isinstance(qpu, HeldQpuExecutor) and isinstance(cpu.provider, LocalProvider) and not per_call
    else:  # on SLURM, through the backend asked for; per-call apps are cpu jobs whose calls get qpu jobs
        (per_call,) = per_call
        assert isinstance(qpu, QpuJobExecutor) and isinstance(per_call, QpuJobExecutor)
        assert per_call.label == "per-call" and per_call.provider.per_call and not per_call.provider.quantum
        assert cpu.provider.backend == qpu.provider.backend == per_call.provider.backend == backend


@pytest.mark.parametrize("backend", ["sbatch", "embedded", "cluster"])
def test_hcqw_config_refuses_an_unknown_backend_with_the_valid_choices(backend):
    with pytest.raises(ValueError) as err:
        hcqw_config(backend=backend)
    assert f"unknown backend {backend!r}" in str(err.value)
    assert all(f"'{choice}'" in str(err.value) for choice in BACKENDS)


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"backend": "local", "backend_options": {"url": "http://127.0.0.1:6820"}}, "backend_options['url']"),
    ({"backend": "slurm", "backend_options": {"token": SECRET}}, "backend_options['token']"),
    ({"backend": "rest"}, "backend_options['url']"),
    ({"backend": "local", "session": QpuSession(max_apps=2)}, "session="),
])
def test_hcqw_config_refuses_combinations_that_mean_nothing(kwargs, named):
    with pytest.raises(ValueError) as err:
        hcqw_config(address="127.0.0.1", **kwargs)
    assert named in str(err.value) and SECRET not in str(err.value)


def test_per_call_excludes_holding_the_qpu_for_the_block_and_sessions():
    with pytest.raises(ValueError, match="quantum.*per_call.*exclude"):
        HetjobSlurmProvider(quantum=True, per_call=True)
    with pytest.raises(ValueError, match="per-call apps hold none"):
        QpuJobExecutor(label="per-call", provider=HetjobSlurmProvider(per_call=True), session=QpuSession())


def test_a_slurm_provider_refuses_local_at_once():
    with pytest.raises(ValueError, match="'slurm'.*'rest'"):
        HetjobSlurmProvider(quantum=True, backend="local")
