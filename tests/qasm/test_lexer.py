"""Tokens: what is kept, what is dropped, and where each one is."""

from __future__ import annotations

import pytest

from hcqw.qasm.lexer import Problem, line_of, tokenize


def kinds_and_texts(text: str) -> list[tuple[str, str]]:
    return [(kind, value) for kind, value, _ in tokenize(text)]


def test_numbers_names_and_operators():
    assert kinds_and_texts("rx(1.5e-3 * π) _θ_0_, $3;") == [
        ("id", "rx"), ("op", "("), ("num", "1.5e-3"), ("op", "*"), ("id", "π"), ("op", ")"), ("id", "_θ_0_"),
        ("op", ","), ("hw", "$3"), ("op", ";"), ("end", "")]
    assert [v for _, v in kinds_and_texts("a++b->c**2 .5 1. 2E+4")] == ["a", "++", "b", "->", "c", "**", "2", ".5", "1.",
                                                                      "2E+4", ""]


def test_comments_pragmas_and_annotations_are_dropped():
    text = "// line\n/* block\n spanning */ x;\n#pragma anything at all\n  pragma more\n@bind $0\nctrl @ x;\n"
    assert [v for _, v in kinds_and_texts(text)] == ["x", ";", "ctrl", "@", "x", ";", ""]


def test_positions_give_lines():
    text = "a;\n\n/* two\nlines */ b;"
    (_, _, a), _, (_, _, b), *_ = tokenize(text)
    assert line_of(text, a) == 1 and line_of(text, b) == 4


@pytest.mark.parametrize("text,words", [("x; /* open", "never closed"), ("x ? y", "unexpected character '?'")])
def test_what_cannot_be_read_is_named(text, words):
    with pytest.raises(Problem, match=words.replace("?", r"\?")):
        tokenize(text)
