"""``--hcqw-*`` command-line settings of the executor (Snakemake derives the flags from the fields)."""

# No "from __future__ import annotations": Snakemake reads the field types at run time.

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from hcqw.slurm import BACKENDS


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    backend: str = field(
        default="local",
        metadata={
            "help": "Where jobs run: 'local' (this machine; rules with resources qpu>0 take turns on the "
            "machine-local quantum device, other rules run in parallel), 'slurm' (sbatch on this cluster) "
            "or 'rest' (slurmrestd, e.g. the cluster next to the QPU).",
            "choices": list(BACKENDS),
            "env_var": True,
        },
    )
    rest_url: Optional[str] = field(
        default=None,
        metadata={"help": "Base URL of slurmrestd (backend 'rest'), e.g. http://127.0.0.1:6820.", "env_var": True},
    )
    token_file: Optional[Path] = field(
        default=None,
        metadata={
            "help": "File holding the SLURM JWT for slurmrestd (backend 'rest'). Without it the token is read "
            "from $HCQW_SLURM_JWT or $SLURM_JWT. The token is never logged nor passed to jobs.",
            "env_var": True,
        },
    )
    rest_allow_http: bool = field(
        default=False,
        metadata={"help": "Send the token over plain http to a slurmrestd that is not on this machine (backend "
                  "'rest'). Off by default: use https, or allow it only on a network you trust.", "env_var": True},
    )
    rest_user: Optional[str] = field(
        default=None,
        metadata={"help": "User name sent to slurmrestd (backend 'rest'); default: $USER.", "env_var": True},
    )
    cpu_partition: str = field(
        default="cpu",
        metadata={"help": "Partition of plain jobs and of the cpu component of quantum jobs, unless a rule "
                  "sets the slurm_partition resource."},
    )
    qpu_partition: str = field(
        default="qpu",
        metadata={"help": "Partition of the qpu component of quantum jobs (rules with resources qpu>0)."},
    )
    qpu_gres: str = field(
        default="qpu:1",
        metadata={"help": "Generic resource the qpu component requests."},
    )
    qpu_runtime: Optional[int] = field(
        default=None,
        metadata={"help": "Time limit (minutes) of the qpu component; default: the rule's runtime. The component "
                  "normally ends with the quantum block, long before its limit."},
    )
    transport: str = field(
        default="zmq",
        metadata={"help": "How the job reaches the device gateway on the qpu node: 'zmq' or 'mpi' "
                  "(MPI dynamic process management, PyPI mpich).", "choices": ["zmq", "mpi"]},
    )
    simulator: str = field(
        default="qsim",
        metadata={"help": "Simulator behind each quantum job's gateway on the qpu node, unless "
                  "--hcqw-device-service is set (qsim, cirq, modelled or module:Class). With --hcqw-backend local "
                  "the machine-local device's simulator is $HCQW_SIMULATOR."},
    )
    device_service: Optional[str] = field(
        default=None,
        metadata={"help": "Node-local address of a QPU service kept running on each qpu node (`hcqw device serve`, "
                  "e.g. ipc:///run/hcqw/qpu.ipc; %%n is replaced by the qpu node's name, for one service per qpu "
                  "host: ipc:///run/hcqw/%%n/qpu.ipc): each quantum job's gateway relays to it instead of starting a "
                  "simulator of its own, so the device stays hot between jobs and the qpu part is ready in "
                  "tenths of a second.", "env_var": True},
    )
    poll_interval: float = field(
        default=2.0,
        metadata={"help": "Seconds between status queries. Each query covers every job of the run in one "
                  "SLURM call (scontrol, or sacct for jobs the controller has forgotten)."},
    )
    workflow_id: Optional[str] = field(
        default=None,
        metadata={"help": "Name of this run in SLURM job names (hcqw:<id>:<rule>...) and QPU metrics; "
                  "default: smk-<random>."},
    )
