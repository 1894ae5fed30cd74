"""Secrets (tokens) that never show up where objects are printed, logged or pickled.

Configuration objects get printed: Parsl writes the repr of its whole ``Config``
(executors, providers and their options) to ``parsl.log``. A token held in a
``Secret`` shows as ``'***'`` there, and refuses to be pickled, so it cannot land in a
pickle on disk or travel to another process by accident; ``reveal()`` is the one way
to the value, used only where the value is sent.
"""

from __future__ import annotations

from typing import Any, NoReturn

MASK = "***"


class Secret:
    """A secret string: masked in repr/str/format, not picklable, shared (never copied) by ``copy``."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The value itself, for the one place that sends it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("a Secret is immutable")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret (a token) is never pickled; give each process a token file instead")

    def __copy__(self) -> "Secret":
        return self

    def __deepcopy__(self, memo: dict) -> "Secret":
        return self


def hide(value: str | Secret | None) -> Secret | None:
    """``value`` as a ``Secret`` (None stays None)."""
    return None if value is None else Secret(value)


def hide_token(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """Backend options with their ``token`` (if any) as a ``Secret``, for objects whose repr gets logged."""
    if not options or options.get("token") is None:
        return options
    return {**options, "token": hide(options["token"])}
