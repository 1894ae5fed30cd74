"""The lab's pytest plugin orders a session: the tests that need no lab first (they run while the labs start)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = textwrap.dedent("""
    import pytest

    @pytest.fixture
    def private_lab():
        pytest.skip("not started here")

    def test_main(slurm_lab):
        pass

    def test_pure_first():
        pass

    @pytest.mark.slurm
    def test_marked():
        pass

    def test_private(private_lab):
        pass

    def test_second_site(slurm_lab_c2):
        pass

    def test_pure_second():
        pass
""")


def collected(tmp_path: Path) -> list[str]:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["hcqw.lab.pytest_plugin"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slurm: needs a lab\n")
    (tmp_path / "test_order.py").write_text(TESTS)
    # HCQW_TEST_SLURM=0: nothing is started, not even in the background (collection alone would not either).
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HCQW_TEST_SLURM": "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    return [line.split("::")[1] for line in result.stdout.splitlines() if "::" in line]


def test_tests_that_need_no_lab_run_first_and_the_rest_keep_their_order(tmp_path):
    assert collected(tmp_path) == ["test_pure_first", "test_pure_second", "test_main", "test_marked", "test_private",
                                   "test_second_site"]
