"""OpenQASM 2/3 text -> tokens.

A token is ``(kind, text, pos)``: kind is ``id``, ``num``, ``str``, ``hw`` (a physical qubit ``$3``),
``op`` (punctuation and operators) or ``end``; ``pos`` is the character offset, turned into a line
number only when an error needs one (``line_of``). Comments, pragmas and annotations are dropped:
they do not change what a circuit does.
"""

from __future__ import annotations

import re

Token = tuple[str, str, int]


class Problem(Exception):
    """A fault at a character offset; ``hcqw.qasm.parse`` turns it into a ``QasmError`` naming the line."""

    def __init__(self, message: str, pos: int | None):
        super().__init__(message)
        self.message, self.pos = message, pos

_TOKEN = re.compile(
    r"""
    (?P<skip>^[ \t]*(?:\#?pragma\b|@[^\W\d])[^\n]*   # pragmas and annotations, each to the end of its line
      | [ \t\r\f\v]+ | \n | //[^\n]* | /\*.*?\*/ )
    | (?P<unclosed>/\*)
    | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<str>"[^"\n]*"|'[^'\n]*')
    | (?P<hw>\$\d+)
    | (?P<id>[^\W\d]\w*)
    | (?P<op>->|\+\+|\*\*|==|!=|<=|>=|<<|>>|&&|\|\||[-+*/%^&|~!<>=;,()\[\]{}:@.\#$'"])
    """,
    re.X | re.S | re.M,
)


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    append = tokens.append
    pos, size = 0, len(text)
    match = _TOKEN.match
    while pos < size:
        found = match(text, pos)
        if found is None:
            raise Problem(f"unexpected character {text[pos]!r}", pos)
        kind = found.lastgroup
        if kind == "unclosed":
            raise Problem("a /* comment is never closed with */", pos)
        if kind != "skip":
            append((kind, found.group(), pos))
        pos = found.end()
    append(("end", "", size))
    return tokens
