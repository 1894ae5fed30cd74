"""The executor's REST token settings, through the real ``snakemake`` command line."""

from __future__ import annotations

from smk_helpers import run_snakemake

from tests.slurm.rest_recorder import RestRecorder


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
