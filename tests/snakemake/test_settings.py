"""The executor's ``--hcqw-*`` settings through the real ``snakemake`` command line: ``--help`` and the
REST token refusals."""

from __future__ import annotations

import subprocess

from tests.support.snakemake_runs import SNAKEMAKE, run_snakemake

from tests.support.rest_recorder import RestRecorder


def test_help_lists_the_device_service_with_its_node_placeholder_and_no_gateway_address_options():
    shown = subprocess.run([SNAKEMAKE, "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr  # argparse fails on a bare % in a help text
    text = " ".join(shown.stdout.split())
    assert "--hcqw-device-service" in text and "%n is replaced by the qpu node's name" in text
    # The gateway finds the qpu node's address itself: nothing to bind, nothing to allow.
    assert "--hcqw-gateway-bind" not in text and "--hcqw-allow-remote" not in text


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
