"""The executor's ``--hcqw-*`` settings through the real ``snakemake`` command line: ``--help``, the
backends (the same words as every adapter's) and the REST token refusals."""

from __future__ import annotations

import subprocess

import os

import pytest

from hcqw.slurm import BACKENDS
from tests.support.rest_recorder import RestRecorder
from tests.support.snakemake_runs import SNAKEMAKE, run_snakemake


def test_help_lists_the_device_service_with_its_node_placeholder_and_no_gateway_address_options():
    shown = subprocess.run([SNAKEMAKE, "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr  # argparse fails on a bare % in a help text
    text = " ".join(shown.stdout.split())
    assert "--hcqw-device-service" in text and "%n is replaced by the qpu node's name" in text
    # The gateway finds the qpu node's address itself: nothing to bind, nothing to allow.
    assert "--hcqw-gateway-bind" not in text and "--hcqw-allow-remote" not in text


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_an_unknown_backend_is_refused_with_the_valid_choices(workdir, how):
    if how == "flag":
        run = run_snakemake(workdir, "--hcqw-backend", "sbatch", timeout=120)
    else:
        run = run_snakemake(workdir, timeout=120, env={**os.environ, "SNAKEMAKE_HCQW_BACKEND": "sbatch"})
    assert run.returncode != 0
    assert "'sbatch'" in run.output and all(f"'{choice}'" in run.output for choice in BACKENDS), run.output[-2000:]
    assert not (workdir / "vqe").exists()  # refused before any job ran


@pytest.mark.parametrize(("extra", "named"), [
    (("--hcqw-backend", "rest"), "--hcqw-rest-url"),                                        # no URL
    (("--hcqw-backend", "slurm", "--hcqw-rest-url", "http://127.0.0.1:6820"), "--hcqw-rest-url"),
    (("--hcqw-rest-user", "someone"), "--hcqw-rest-user"),                                 # local (default)
])
def test_combinations_that_mean_nothing_are_refused_by_flag(workdir, extra, named):
    run = run_snakemake(workdir, *extra, timeout=120)
    assert run.returncode != 0 and named in run.output and "backend '" in run.output, run.output[-2000:]
    assert not (workdir / "vqe").exists()


def test_plain_http_to_another_host_is_refused_before_any_request(workdir):
    run = run_snakemake(workdir, "--hcqw-backend", "rest", "--hcqw-rest-url", "http://10.9.9.9:6820", timeout=120)
    assert run.returncode != 0
    assert "plain http to another host" in run.output and "--hcqw-rest-allow-http" in run.output


def test_a_world_readable_token_file_is_refused_with_the_fix(workdir):
    token_file = workdir.parent / "jwt"
    token_file.write_text("eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJtZSJ9.c21rLXNlY3JldA")
    token_file.chmod(0o644)
    with RestRecorder() as slurmrestd:
        run = run_snakemake(workdir, "--hcqw-backend", "rest", "--hcqw-rest-url", slurmrestd.url,
                            "--hcqw-token-file", str(token_file), timeout=120)
    assert run.returncode != 0 and f"chmod 600 {token_file}" in run.output
    assert slurmrestd.tokens() == [] and "c21rLXNlY3JldA" not in run.output  # nothing was sent, nothing shown
