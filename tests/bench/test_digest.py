"""bench/digest.py: the benchmarks digest names only commands that exist."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import digest
from tests.support import ROOT

HEADER = "| figure | command | date | machine | history section |\n| --- | --- | --- | --- | --- |\n"
HISTORY = "# History\n\n## Co-scheduling\n\ntext\n\n### Embedded default\n"


def test_every_row_of_the_digest_names_a_command_that_exists():
    result = subprocess.run([sys.executable, "bench/digest.py"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = digest.digest_rows((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"))
    assert len(rows) >= 6, "one table per question, each with its latest figure"


@pytest.mark.parametrize("command", [
    "python bench/coschedule.py --k 4",
    ".venv/bin/python bench/decode.py --repeats 200",
    "PYTHONPATH=/tmp/main python3 bench/dispatch_cpu.py",
    "python -m examples.vqe --fused",
    "hcqw usage --by user runs/",
    "pytest -s tests/codec/test_crafted_on_lab.py::test_x",
    "python -m pytest tests/codec",
])
def test_a_command_that_exists_passes(command):
    assert digest.command_problems(command) == []


@pytest.mark.parametrize("command, problem", [
    ("python bench/no_such_bench.py --k 4", "runs bench/no_such_bench.py, which does not exist"),
    ("python -m examples.no_such", "runs module examples.no_such, which has no file here"),
    ("hcqw frobnicate runs/", "runs 'hcqw frobnicate', which is not an hcqw command"),
    ("pytest tests/no_such_test.py", "names tests/no_such_test.py, which does not exist"),
    ("pytest -k fast", "names no test file or directory"),
    ("--qpu-nodes hcqw-q1", "starts with '--qpu-nodes': expected python, hcqw or pytest"),
    ("python", "runs python without a script or module"),
])
def test_a_command_that_names_nothing_here_is_refused_by_name(command, problem):
    assert digest.command_problems(command) == [problem]


def test_a_row_without_a_command_date_or_machine_is_reported_with_its_line():
    text = ("# Digest\n\n" + HEADER + "| 0.5x | by hand | last week | | Scheduling |\n"
            "| 1.0x | `python bench/coschedule.py` | 2026-11-30 | lab | Embedded default |\n")
    assert digest.check(text, HISTORY) == [
        "line 5: the date 'last week' is not YYYY-MM-DD",
        "line 5: the machine is empty",
        "line 5: the command cell quotes no command in backticks",
        "line 5: the history has no section 'Scheduling'",
    ]


def test_a_page_without_a_digest_table_is_refused():
    assert digest.check("# Benchmarks\n\n| a | b |\n| - | - |\n| 1 | 2 |\n", HISTORY) == [
        "no table with the columns figure, command, date, machine, history section"]


def test_a_pipe_inside_backticks_stays_in_its_cell():
    text = HEADER + "| 2x | `python bench/decode.py --x 'a|b'` | 2026-12-06 | VM | s |\n"
    (row,) = digest.digest_rows(text)
    assert row.commands == ("python bench/decode.py --x 'a|b'",) and row.machine == "VM"
