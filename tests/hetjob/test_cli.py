"""``hcqw slurm run``, the user's entry point, end to end over slurmrestd: a whole chain
submitted through REST with a token file, followed to its result."""

from __future__ import annotations

import pytest

from examples.qaoa_maxcut.pipeline import brute_force_max_cut
from hcqw.cli import main as hcqw_main

pytestmark = pytest.mark.slurm


def test_slurm_run_over_rest_completes_a_chain_and_never_shows_the_token(slurm_lab, job_env, tmp_path, capsys):
    token = slurm_lab.token(lifespan=600)
    token_file = tmp_path / "jwt"
    token_file.write_text(token)
    token_file.chmod(0o600)
    code = hcqw_main(["slurm", "run", "examples.qaoa_maxcut.pipeline:make_loop", "--param", "iterations=1",
                      "--runs-dir", str(tmp_path / "runs"), "--workflow-id", "cli-rest", "--backend", "rest",
                      "--rest-url", slurm_lab.rest_url, "--token-file", str(token_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "q0001: SLURM job" in out and "c0001: SLURM job" in out
    assert f"{brute_force_max_cut()}" in out  # the loop's summary line names the optimum
    assert token not in out + err
    for path in (tmp_path / "runs").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"token leaked into {path}"


def test_slurm_run_reports_a_missing_rest_url_cleanly(capsys):
    assert hcqw_main(["slurm", "run", "examples.qaoa_maxcut.pipeline:make_loop", "--backend", "rest"]) == 2
    assert "--backend rest needs --rest-url" in capsys.readouterr().err
