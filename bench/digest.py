"""Check the benchmarks digest: every figure names a command that exists, and its run in the history.

    .venv/bin/python bench/digest.py [--digest BENCHMARKS.md] [--history docs/benchmarks-history.md]

The digest (BENCHMARKS.md; the site's docs/benchmarks.md shows its tables) answers each question
in a table whose columns include ``figure``, ``command``, ``date``, ``machine`` and
``history section``. Every row must quote at least one command in backticks in its ``command``
cell, a date (YYYY-MM-DD), a machine, and begin its last cell with the heading of the history's
section that holds the run (docs/benchmarks-history.md). Every command must name something that exists in this
repository:

- ``python bench/x.py ...`` (or ``.venv/bin/python``, ``python3``): the script's file;
- ``python -m pkg.mod ...``: the module's file (``pkg/mod.py`` or ``pkg/mod/__main__.py``);
- ``hcqw <command> ...``: an ``hcqw`` subcommand (``hcqw/cli/<command>.py``);
- ``pytest path[::test] ...`` (or ``python -m pytest``): each test file or directory named.

Prints each problem with its line in the digest and exits 1, or prints a one-line summary.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIGEST = ROOT / "BENCHMARKS.md"
HISTORY = ROOT / "docs" / "benchmarks-history.md"
COLUMNS = ("figure", "command", "date", "machine", "history section")
HEADING = re.compile(r"^#{2,4} (.+?)\s*$", re.MULTILINE)
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
CODE = re.compile(r"`([^`]+)`")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Row:
    """One figure row of the digest."""

    line: int
    figure: str
    commands: tuple[str, ...]
    date: str
    machine: str
    section: str


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row; a ``|`` inside backticks belongs to its cell."""
    cells, current, in_code = [], [], False
    for char in line.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    cells.append("".join(current).strip())
    return cells


def digest_rows(text: str) -> list[Row]:
    """Every row of every table whose header has the digest's columns."""
    rows: list[Row] = []
    header: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = _cells(line)
        if header is None:
            names = [cell.lower() for cell in cells]
            header = names if all(column in names for column in COLUMNS) else []
            continue
        if not header or all(set(cell) <= set("-: ") for cell in cells):
            continue  # not a digest table, or the header's separator line
        cell = dict(zip(header, cells))
        rows.append(Row(line=number, figure=cell.get("figure", ""),
                        commands=tuple(CODE.findall(cell.get("command", ""))),
                        date=cell.get("date", ""), machine=cell.get("machine", ""),
                        section=cell.get("history section", "")))
    return rows


def _module_exists(module: str, root: Path) -> bool:
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def _pytest_problems(arguments: list[str], root: Path) -> list[str]:
    paths = [a.split("::")[0] for a in arguments if not a.startswith("-") and ("/" in a or a.endswith(".py"))]
    if not paths:
        return ["names no test file or directory"]
    return [f"names {path}, which does not exist" for path in paths if not (root / path).exists()]


def command_problems(command: str, root: Path = ROOT) -> list[str]:
    """What is wrong with one quoted command (nothing: it names something that exists)."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return [f"cannot be split into words ({exc})"]
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if not words:
        return ["is empty"]
    program, arguments = Path(words[0]).name, words[1:]
    if program in ("python", "python3"):
        if arguments[:2] == ["-m", "pytest"]:
            return _pytest_problems(arguments[2:], root)
        if arguments[:1] == ["-m"] and len(arguments) > 1:
            module = arguments[1]
            return [] if _module_exists(module, root) else [f"runs module {module}, which has no file here"]
        if not arguments or arguments[0].startswith("-"):
            return ["runs python without a script or module"]
        script = arguments[0]
        return [] if (root / script).is_file() else [f"runs {script}, which does not exist"]
    if program == "hcqw":
        if not arguments:
            return ["names no hcqw command"]
        subcommand = arguments[0]
        known = (root / "hcqw" / "cli" / f"{subcommand}.py").is_file()
        return [] if known else [f"runs 'hcqw {subcommand}', which is not an hcqw command"]
    if program == "pytest":
        return _pytest_problems(arguments, root)
    return [f"starts with {program!r}: expected python, hcqw or pytest"]


def history_sections(history: str) -> list[str]:
    """The headings of the history's sections (levels 2-4), in order."""
    return HEADING.findall(history)


def check(text: str, history: str, root: Path = ROOT) -> list[str]:
    """Every problem of the digest's figure rows, each naming its line."""
    rows = digest_rows(text)
    sections = history_sections(history)
    if not rows:
        return [f"no table with the columns {', '.join(COLUMNS)}"]
    problems = []
    for row in rows:
        where = f"line {row.line}"
        if not row.figure:
            problems.append(f"{where}: the figure is empty")
        if not DATE.search(row.date):
            problems.append(f"{where}: the date {row.date!r} is not YYYY-MM-DD")
        if not row.machine:
            problems.append(f"{where}: the machine is empty")
        if not row.commands:
            problems.append(f"{where}: the command cell quotes no command in backticks")
        # A cell may go on after the heading ("The grid (issue 16, point 4), cell 3").
        if not row.section or not any(row.section.startswith(heading) for heading in sections):
            problems.append(f"{where}: the history has no section {row.section!r}")
        for command in row.commands:
            problems += [f"{where}: `{command}` {problem}" for problem in command_problems(command, root)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digest", type=Path, default=DIGEST, help="the digest page (default: %(default)s)")
    parser.add_argument("--history", type=Path, default=HISTORY, help="the dated runs (default: %(default)s)")
    args = parser.parse_args(argv)
    text = args.digest.read_text(encoding="utf-8")
    problems = check(text, args.history.read_text(encoding="utf-8"))
    for problem in problems:
        print(f"{args.digest}: {problem}", file=sys.stderr)
    if problems:
        print(f"digest: fix each row to quote a command that exists (a bench/ script, an hcqw command "
              f"or a pytest path) and the heading of its run's section in {args.history}", file=sys.stderr)
        return 1
    rows = digest_rows(text)
    print(f"{args.digest}: {len(rows)} figure rows, {sum(len(r.commands) for r in rows)} commands, all exist")
    return 0


if __name__ == "__main__":
    sys.exit(main())
