"""OpenQASM 2 and 3 text -> ``cirq.Circuit``, parsed on the client.

    from hcqw.qasm import parse
    circuit = parse(open("bell.qasm").read())

``qpu.run(text, ...)`` does this itself for any string that starts with ``OPENQASM``
(``hcqw.device.work.WorkItem.build``). Straight-line circuits only: control flow and classical
code are refused by name (``QasmError``, a ``CircuitError``, with the line). What becomes which Cirq
gate, qubit and measurement key: ``gates.py`` and ``program.py``; the user's page is docs/qasm.md.

This module is light (no cirq import) so a client that sends Cirq JSON text never loads cirq here.
"""

from __future__ import annotations

import re
from typing import Any

from hcqw.errors import QasmError

__all__ = ["MAX_TEXT", "QasmError", "is_openqasm", "parse"]

MAX_TEXT = 1_000_000  # characters

_LEADING = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.S)


def is_openqasm(text: str) -> bool:
    """Whether ``text`` starts, after whitespace and comments, with the ``OPENQASM`` header (looked for in
    the first ``MAX_TEXT`` characters, the most ``parse`` reads)."""
    return text.startswith("OPENQASM", _LEADING.match(text, 0, MAX_TEXT).end())


def parse(text: str) -> Any:
    """The ``cirq.Circuit`` of an OpenQASM 2.0 or 3.x program; ``QasmError`` naming the line otherwise."""
    from hcqw.qasm.lexer import Problem, line_of
    from hcqw.qasm.parser import Parser

    if not isinstance(text, str):
        raise QasmError(f"expected OpenQASM text (str), got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise QasmError(f"the text has {len(text):,} characters; hcqw parses at most {MAX_TEXT:,}")
    try:
        return Parser(text).run().circuit()
    except Problem as problem:
        raise QasmError(problem.message, None if problem.pos is None else line_of(text, problem.pos)) from None
