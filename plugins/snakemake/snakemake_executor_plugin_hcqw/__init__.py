"""Snakemake executor plugin ``hcqw``: ``snakemake --executor hcqw``.

Rules that use the quantum device say ``resources: qpu=1`` and open it in their code with
``hcqw.qpu.open_qpu()``. ``--hcqw-backend local`` (default) runs jobs on this machine, quantum
rules taking turns on the machine-local device; ``slurm`` submits with sbatch, quantum rules
as cpu+qpu hetjobs whose qpu component ends with the quantum block; ``rest`` does the same
through slurmrestd. See ``snakemake --help`` ("hcqw executor settings") for the flags.
"""

from snakemake_interface_executor_plugins.settings import CommonSettings

from snakemake_executor_plugin_hcqw.executor import Executor
from snakemake_executor_plugin_hcqw.settings import ExecutorSettings

common_settings = CommonSettings(
    non_local_exec=True,  # jobs are separate processes (SLURM jobs or local subprocesses)
    implies_no_shared_fs=False,  # checkpoints pass between jobs through the shared file system
    job_deploy_sources=False,
    # --envvars go into the job's environment, not into its command line (which SLURM stores).
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=0,
)

__all__ = ["Executor", "ExecutorSettings", "common_settings"]
