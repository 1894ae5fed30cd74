"""The Snakemake executor: each job runs Snakemake's own job command through a runner.

Rules with ``resources: qpu=1`` (any qpu > 0) are quantum nodes: on SLURM a cpu+qpu
hetjob whose qpu component ends when the rule's code closes its ``hcqw.qpu.open_qpu()``
lease (or exits); locally a process that waits its turn for the machine's device. Rules
with ``resources: qpu="per-call"`` run an unsplit driver as a cpu job whose quantum calls
each get a qpu job of their own (``hcqw.hetjob.percall``; SLURM only). All other rules are
plain jobs. Per-job logs: ``.snakemake/hcqw_logs/<rule>/<wildcards>/<job id>.log``;
QPU metrics: ``.snakemake/hcqw/metrics/qpu.jsonl`` (``hcqw report .snakemake/hcqw``).
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path

from hcqw.errors import HcqwError
from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.slurm import UnknownPartition, check_backend, open_backend
from hcqw.trust import require_private
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

from snakemake_executor_plugin_hcqw.resources import job_settings, path_part, per_call, qpu_count, wildcards_part
from snakemake_executor_plugin_hcqw.runners import JobSpec, LocalRunner, Runner, SlurmRunner
from snakemake_executor_plugin_hcqw.settings import ExecutorSettings


#: open_backend's REST options as --hcqw-* flags, for check_backend's messages.
REST_FLAGS = {"url": "--hcqw-rest-url", "user": "--hcqw-rest-user", "token_file": "--hcqw-token-file",
              "allow_http": "--hcqw-rest-allow-http"}


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        self.settings: ExecutorSettings = self.workflow.executor_settings or ExecutorSettings()
        self.run_id = self.settings.workflow_id or f"smk-{uuid.uuid4().hex[:8]}"
        # Snakemake has changed into the workflow's working directory by now.
        self.workdir = Path.cwd().absolute()
        # Jobs run here and Python imports from here (a planted hcqw/ would run as the user): refuse a
        # working directory other users may write.
        try:
            require_private(self.workdir, "Snakemake working directory", "Give snakemake a directory only you "
                            "may write with -d, e.g. -d ~/vqe-smk (not one in /tmp that another user created)")
        except HcqwError as err:
            raise WorkflowError(str(err)) from None
        self.state_dir = self.workdir / ".snakemake" / "hcqw"
        self.log_root = self.workdir / ".snakemake" / "hcqw_logs"
        self.runner = self._open_runner()
        # Our own pace: one status query per poll interval for all jobs (Snakemake's default is 10 s).
        self.next_seconds_between_status_checks = self.settings.poll_interval
        self.base_job_settings = NodeJobSettings(
            transport=self.settings.transport, simulator=self.settings.simulator,
            device_service=self.settings.device_service,
            # --envvars reach the job through its environment, never through the job script.
            environment=self.envvars(),
        )
        # Jobs submitted and not yet seen to end: Snakemake's own list misses the jobs
        # that are being checked at the moment Ctrl-C arrives.
        self._live: dict[str, str] = {}
        self._live_lock = threading.Lock()
        self._previous_sigterm = None  # Snakemake's handler while ours is installed
        self.logger.info(f"hcqw executor: backend {self.settings.backend} ({self.runner!r}), run {self.run_id}, "
                         f"job logs in {self.log_root}")

    def _open_runner(self) -> Runner:
        s = self.settings
        rest = {"url": s.rest_url, "user": s.rest_user, "token_file": str(s.token_file) if s.token_file else None,
                "allow_http": s.rest_allow_http or None}
        try:
            check_backend(s.backend, rest, names=REST_FLAGS)
        except HcqwError as err:  # a clean message instead of a traceback
            raise WorkflowError(str(err)) from None
        if s.backend == "local":
            return LocalRunner(self.run_id, self.workdir, self.state_dir, self.envvars())
        options = {name: value for name, value in rest.items() if value is not None}
        backend = open_backend(s.backend, poll_interval=s.poll_interval, **options)
        return SlurmRunner(backend, self.run_id, self.workdir, self.state_dir)

    # -- submission ----------------------------------------------------------

    def run_jobs(self, jobs: list[JobExecutorInterface]) -> None:
        self._install_sigterm_handler()
        super().run_jobs(jobs)

    def run_job(self, job: JobExecutorInterface) -> None:
        label = f"group-{job.name}" if job.is_group() else job.name
        wildcards = {} if job.is_group() else dict(job.wildcards.items())
        log_dir = self.log_root / path_part(label) / wildcards_part(wildcards)
        try:
            quantum = qpu_count(job.resources) > 0
            spec = JobSpec(
                node=path_part(f"{label}.{wildcards_part(wildcards)}" if wildcards else label),
                command=self.format_job_exec(job), quantum=quantum,
                settings=job_settings(job.resources, job.threads, self.settings, self.base_job_settings),
                log_dir=log_dir, per_call=per_call(job.resources),
            )
            log_dir.mkdir(parents=True, exist_ok=True)
            job_id, log_path = self.runner.submit(spec)
        except UnknownPartition as err:
            self.report_job_error(SubmittedJobInfo(job), msg=(
                f"hcqw: rule {label} was not submitted: {err} Set the rule's slurm_partition resource, "
                f"or --hcqw-cpu-partition / --hcqw-qpu-partition. "))
            return
        except (HcqwError, ValueError) as err:
            self.report_job_error(SubmittedJobInfo(job), msg=f"hcqw: rule {label} was not submitted: {err} ")
            return
        with self._live_lock:
            self._live[job_id] = label
        self.report_job_submission(SubmittedJobInfo(job, external_jobid=job_id,
                                                    aux={"label": label, "log": log_path}))
        kind = "quantum job (cpu+qpu hetjob)" if quantum and self.runner.name != "local" else (
            "quantum job" if quantum else "per-call job (a qpu job per quantum call)" if spec.per_call else "job")
        self.logger.info(f"hcqw: rule {label} submitted as {self.runner.name} {kind} {job_id}; log: {log_path}")

    # -- status ----------------------------------------------------------------

    async def check_active_jobs(self, active_jobs: list[SubmittedJobInfo]) -> AsyncGenerator[SubmittedJobInfo, None]:
        if not active_jobs:
            return
        async with self.status_rate_limiter:
            try:
                outcomes = self.runner.poll([j.external_jobid for j in active_jobs])
            except HcqwError as err:  # e.g. the controller is briefly unreachable: ask again next round
                self.logger.warning(f"hcqw: job status query failed, retrying: {err}")
                outcomes = {}
        for job_info in active_jobs:
            outcome = outcomes.get(job_info.external_jobid)
            if outcome is None or not outcome.done:
                yield job_info
                continue
            with self._live_lock:
                self._live.pop(job_info.external_jobid, None)
            if outcome.error:
                self.report_job_error(job_info, msg=f"hcqw: rule {job_info.aux['label']} failed: {outcome.error}\n")
            else:
                self.report_job_success(job_info)

    # -- cancellation ----------------------------------------------------------

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        with self._live_lock:
            ids = set(self._live) | {j.external_jobid for j in active_jobs if j.external_jobid}
            self._live.clear()
        if ids:
            self.logger.info(f"hcqw: cancelling {len(ids)} job(s): {', '.join(sorted(ids))}")
            self.runner.cancel(sorted(ids))

    def _install_sigterm_handler(self) -> None:
        """SIGTERM cancels every job of the run, then lets Snakemake stop as it would.

        Snakemake's own SIGTERM handler (installed after the executor exists) only stops
        scheduling and waits for running jobs, which on a cluster can take hours."""
        if self._previous_sigterm is not None or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum, frame):
            self.logger.info("hcqw: SIGTERM, cancelling the run's jobs")
            self.cancel_jobs([])
            if callable(previous):
                previous(signum, frame)
            else:
                raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_sigterm)
        self._previous_sigterm = previous

    def shutdown(self) -> None:
        super().shutdown()
        # In-process users (Snakemake's API, tests) keep their process: give SIGTERM back.
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
