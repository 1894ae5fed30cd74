"""The error types users see.

Every error names the problem and what to do about it. Callers catch
``HcqwError`` to report a clean message instead of a traceback.
"""


class HcqwError(Exception):
    """Base of every error hcqw raises on purpose."""


class CircuitError(HcqwError, ValueError):
    """A circuit or work item the device cannot run (malformed, too wide, bad repetitions)."""


class QasmError(CircuitError):
    """OpenQASM text hcqw cannot run: malformed, a construct it refuses (control flow, classical code),
    or beyond its size bounds. ``line`` is the 1-based line of the offending text, None for the whole."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"OpenQASM line {line}: {message}" if line else f"OpenQASM: {message}")


class DeviceError(HcqwError):
    """The quantum device cannot serve the request."""


class DeviceOffline(DeviceError):
    """The device is offline or calibrating and the caller's wait ran out."""


class CheckpointError(HcqwError):
    """A checkpoint is missing, truncated, unsigned, tampered with or signed with another key."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"checkpoint {self.path}: {reason}")


class CheckpointMismatch(CheckpointError):
    """A genuine checkpoint in the wrong place: another workflow's, another node's (copied, swapped or
    rolled back), or written by a run with other loop parameters."""


class WorkflowError(HcqwError):
    """A hybrid workflow definition or one of its nodes is invalid or failed."""


class AuthError(HcqwError):
    """A request whose sender could not be authenticated: no credential, or one that is malformed,
    forged, expired, replayed, or that munged could not check. ``reason`` names which."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
