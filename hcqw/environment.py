"""The job environment: every ``HCQW_*`` variable hcqw reads or sets, named here and nowhere else.

Engines (embedded, SLURM, Snakemake, Parsl) and scripts import these names instead of spelling
the strings, so a step sees the same variables whichever engine started it.

Set per step by the engines (``step_environment``) and read by ``hcqw.qpu.open_qpu``:
``WORKFLOW``, ``NODE``, ``METRICS``, and ``DEVICE`` (``NO_DEVICE`` in a classical job).
Set by a quantum node's batch script (``hcqw.hetjob.jobs``) for ``hcqw.hetjob.device``:
``GATEWAY_ADDRESS_FILE``, ``GATEWAY_PID``, ``GATEWAY_LOG``, ``PEER_TIMEOUT``, ``DEVICE_WAIT``.
Set by an engine that holds the local device for a qpu-marked step (``hcqw.device.hold``): ``DEVICE_HOLD``.
Set for a per-call driver (``hcqw slurm submit``, or by hand in a plain job): ``DEVICE=per-call`` and ``PER_CALL_*``.
Set by users and sites: the rest.
"""

from __future__ import annotations

from pathlib import Path

# -- per step, set by the engines --------------------------------------------------------------
WORKFLOW = "HCQW_WORKFLOW"  # the lease's default workflow name
NODE = "HCQW_NODE"  # the lease's default node name
METRICS = "HCQW_METRICS"  # the run's QPU timeline (hcqw.metrics)
DEVICE = "HCQW_DEVICE"  # NO_DEVICE in jobs without a qpu component, PER_CALL in a per-call driver
NO_DEVICE = "none"
# The one word of the per-call mode (hcqw.hetjob.percall): each quantum call gets the qpu from SLURM for itself.
PER_CALL = "per-call"
DEVICE_HOLD = "HCQW_DEVICE_HOLD"  # the hold of the local device a qpu-marked step runs under

# -- in component 0 of a quantum node's hetjob, set by its batch script ------------------------
GATEWAY_ADDRESS_FILE = "HCQW_GATEWAY_ADDRESS_FILE"
GATEWAY_PID = "HCQW_GATEWAY_PID"
GATEWAY_LOG = "HCQW_GATEWAY_LOG"
PEER_TIMEOUT = "HCQW_PEER_TIMEOUT"  # s the link to the gateway may be down before the node gives up
DEVICE_WAIT = "HCQW_DEVICE_WAIT"  # s a run in a quantum job may wait for an offline/calibrating device

# -- a per-call driver's calls (HCQW_DEVICE=per-call), set by `hcqw slurm submit` or the user ----------
PER_CALL_SERVICE = "HCQW_PER_CALL_SERVICE"  # the qpu hosts' resident QPU service (%n: the host); unset: simulate per call
PER_CALL_PARTITION = "HCQW_PER_CALL_PARTITION"  # default qpu
PER_CALL_GRES = "HCQW_PER_CALL_GRES"  # default qpu:1
PER_CALL_OPTIONS = "HCQW_PER_CALL_OPTIONS"  # further sbatch options of each call's job (shell words)
PER_CALL_TIME_LIMIT = "HCQW_PER_CALL_TIME_LIMIT"  # each call's job, minutes or a SLURM time; default 10
PER_CALL_RECORDS = "HCQW_PER_CALL_RECORDS"  # signed records of finished calls, replayed by a re-run (hcqw.hetjob.replay)
PER_CALL_DIR = "HCQW_PER_CALL_DIR"  # the calls' private job directories; default <state dir>/per-call
PER_CALL_AHEAD = "HCQW_PER_CALL_AHEAD"  # 1: request the next call's job as a call ends (for a staged qpu host only)

# -- set by users and sites --------------------------------------------------------------------
DEVICE_ADDRESS = "HCQW_DEVICE_ADDRESS"  # a running QPU service open_qpu uses
SIMULATOR = "HCQW_SIMULATOR"  # the simulator of the machine-local device
SERVICE_ADDRESS = "HCQW_SERVICE_ADDRESS"  # where `hcqw device serve` listens by default
STATE_DIR = "HCQW_STATE_DIR"  # per-user state (hcqw.paths)
CHECKPOINT_KEY = "HCQW_CHECKPOINT_KEY"  # the checkpoint signing key's path
DEVICE_DIR = "HCQW_DEVICE_DIR"  # a local device's queue and status files
MUNGE_SOCKET = "HCQW_MUNGE_SOCKET"  # munged's socket (hcqw.identity)
SLURM_JWT = "HCQW_SLURM_JWT"  # slurmrestd token (a secret: never passed to jobs)
SLURM_REST_ALLOW_HTTP = "HCQW_SLURM_REST_ALLOW_HTTP"
MODELLED_CIRCUIT_OVERHEAD = "HCQW_MODELLED_CIRCUIT_OVERHEAD"  # hcqw.device.modelled
MODELLED_SHOT_TIME = "HCQW_MODELLED_SHOT_TIME"

# -- the site lab and its tests (hcqw.lab) ------------------------------------------------------
LAB_DIR = "HCQW_LAB_DIR"
SITE_DIR = "HCQW_SITE_DIR"
TEST_SLURM = "HCQW_TEST_SLURM"  # "0" skips the lab tests
TEST_LAB_DIR = "HCQW_TEST_LAB_DIR"
TEST_LAB_PORT = "HCQW_TEST_LAB_PORT"
TEST_LAB_C2_DIR = "HCQW_TEST_LAB_C2_DIR"
TEST_LAB_C2_PORT = "HCQW_TEST_LAB_C2_PORT"
TEST_LAB_ACCT_DIR = "HCQW_TEST_LAB_ACCT_DIR"
TEST_LAB_ACCT_PORT = "HCQW_TEST_LAB_ACCT_PORT"
TEST_LAB_STAGED_DIR = "HCQW_TEST_LAB_STAGED_DIR"
TEST_LAB_STAGED_PORT = "HCQW_TEST_LAB_STAGED_PORT"


def step_environment(workflow: str, node: str, metrics: Path | str, *, quantum: bool) -> dict[str, str]:
    """What every engine sets for one step (``open_qpu`` reads it): run and node names, the run's
    metrics file (``hcqw.paths.run_metrics``), and ``DEVICE=none`` in a classical step, so opening the device there fails at once
    instead of simulating on a compute node."""
    env = {WORKFLOW: workflow, NODE: node, METRICS: str(metrics)}
    if not quantum:
        env[DEVICE] = NO_DEVICE
    return env
