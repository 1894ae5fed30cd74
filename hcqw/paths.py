"""Where hcqw keeps per-user state. Every location can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """Per-user state (device queues, service sockets): ``$HCQW_STATE_DIR`` or ``~/.local/state/hcqw``."""
    base = os.environ.get("HCQW_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "hcqw"
    )
    return Path(base)


def key_path() -> Path:
    """The checkpoint signing key: ``$HCQW_CHECKPOINT_KEY`` or ``~/.config/hcqw/checkpoint.key``."""
    explicit = os.environ.get("HCQW_CHECKPOINT_KEY")
    if explicit:
        return Path(explicit)
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(config) / "hcqw" / "checkpoint.key"


def device_dir(device: str) -> Path:
    """Queue and status files of a local device: ``$HCQW_DEVICE_DIR`` or ``<state_dir>/devices/<device>``.

    The directory is the caller's own (``hcqw.device.fifo_lock`` refuses a shared one); users
    share a device through a QPU service (``HCQW_DEVICE_ADDRESS``)."""
    explicit = os.environ.get("HCQW_DEVICE_DIR")
    return Path(explicit) if explicit else state_dir() / "devices" / device
