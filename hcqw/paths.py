"""Where hcqw keeps things: per-user state, and the layout of a run directory.

Per-user state can be moved with environment variables (``hcqw.environment``). A run directory
(one workflow run, or an engine's state directory holding the steps of several) has::

    metrics/qpu.jsonl        the run's QPU timeline (hcqw.metrics): holds, sessions, releases, execs
    metrics/gateway.jsonl    the device execs of the run's SLURM gateways
    checkpoints/state-NNNN.ckpt, quantum-NNNN.ckpt   a hybrid loop's checkpoints
    jobs/<node>.<jobid>/     a quantum node's private files (gateway.address, its port, pid and log)
    slurm/                   batch output of the run's SLURM jobs

Engines, tools and scripts take these names from here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hcqw import environment

METRICS_DIR = "metrics"
QPU_METRICS = "qpu.jsonl"
GATEWAY_METRICS = "gateway.jsonl"
CHECKPOINTS_DIR = "checkpoints"
JOBS_DIR = "jobs"
SLURM_DIR = "slurm"
GATEWAY_ADDRESS = "gateway.address"  # in a quantum node's job directory
# Also there: the node's release of the qpu component, "requested" then "done", so the gateway (on
# "requested") and the batch script's trap (on "done") do not ask slurmctld again: one release
# request per quantum node (hcqw.hetjob.device).
QPU_RELEASED = "qpu.released"
STATE_FILE_GLOB = "state-*.ckpt"
_STATE_FILE = re.compile(r"state-(\d{4,})\.ckpt$")


def run_metrics(run_dir: Path | str) -> Path:
    """The run's QPU timeline."""
    return Path(run_dir) / METRICS_DIR / QPU_METRICS


def gateway_metrics(run_dir: Path | str) -> Path:
    """The device execs of the run's SLURM gateways."""
    return Path(run_dir) / METRICS_DIR / GATEWAY_METRICS


def run_checkpoints(run_dir: Path | str) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def job_prefix(run_dir: Path | str, node: str) -> Path:
    """A quantum node's job directories are ``<this>.<jobid>``."""
    return Path(run_dir) / JOBS_DIR / node


def slurm_output(run_dir: Path | str) -> Path:
    """Where the run's SLURM jobs write their output."""
    return Path(run_dir) / SLURM_DIR


def state_file(iteration: int) -> str:
    """The state checkpoint after ``iteration`` (0: the initial state)."""
    return f"state-{iteration:04d}.ckpt"


def quantum_file(iteration: int) -> str:
    """What the quantum step of ``iteration`` measured."""
    return f"quantum-{iteration:04d}.ckpt"


def state_iteration(name: str) -> int | None:
    """The iteration of a ``state_file`` name; None for any other name."""
    match = _STATE_FILE.search(name)
    return int(match.group(1)) if match else None


def state_dir() -> Path:
    """Per-user state (device queues, service sockets): ``$HCQW_STATE_DIR`` or ``~/.local/state/hcqw``."""
    base = os.environ.get(environment.STATE_DIR) or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "hcqw"
    )
    return Path(base)


def key_path() -> Path:
    """The checkpoint signing key: ``$HCQW_CHECKPOINT_KEY`` or ``~/.config/hcqw/checkpoint.key``."""
    explicit = os.environ.get(environment.CHECKPOINT_KEY)
    if explicit:
        return Path(explicit)
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(config) / "hcqw" / "checkpoint.key"


def device_dir(device: str) -> Path:
    """Queue and status files of a local device: ``$HCQW_DEVICE_DIR`` or ``<state_dir>/devices/<device>``.

    The directory is the caller's own (``hcqw.device.fifo_lock`` refuses a shared one); users
    share a device through a QPU service (``HCQW_DEVICE_ADDRESS``)."""
    explicit = os.environ.get(environment.DEVICE_DIR)
    return Path(explicit) if explicit else state_dir() / "devices" / device
