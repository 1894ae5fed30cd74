"""How a Snakemake job's resources become SLURM components (pure logic, no cluster)."""

from __future__ import annotations

import pytest

from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.slurm import SlurmSettingsError

from snakemake_executor_plugin_hcqw import ExecutorSettings
from snakemake_executor_plugin_hcqw.resources import job_settings, qpu_count, wildcards_part

BASE = NodeJobSettings()


def test_rule_resources_map_to_the_cpu_and_qpu_components():
    resources = {"qpu": 1, "runtime": 90, "mem_mb": 2000, "slurm_partition": "short", "slurm_account": "chem",
                 "qos": "high", "constraint": "avx2", "slurm_extra": "--exclusive", "tmpdir": "/tmp"}
    settings = job_settings(resources, 3, ExecutorSettings(qpu_partition="quantum", qpu_gres="qpu:ibmq:1"), BASE)
    cpu, qpu = settings.cpu, settings.qpu
    assert (cpu.partition, cpu.account, cpu.qos, cpu.time_limit, cpu.mem_mb, cpu.cpus_per_task) == (
        "short", "chem", "high", 90, 2000, 3)
    assert cpu.extra == ("--exclusive", "--constraint=avx2")
    assert (qpu.partition, qpu.gres, qpu.account, qpu.qos, qpu.time_limit) == ("quantum", "qpu:ibmq:1", "chem", "high", 90)
    assert qpu_count(resources) == 1


def test_defaults_come_from_the_settings():
    settings = job_settings({}, 1, ExecutorSettings(cpu_partition="batch", qpu_runtime=5), BASE)
    assert (settings.cpu.partition, settings.cpu.time_limit, settings.cpu.mem_mb) == ("batch", None, None)
    assert settings.qpu.time_limit == 5
    assert qpu_count({}) == 0 and qpu_count({"qpu": 0}) == 0


def test_cpus_per_task_wins_over_threads():
    assert job_settings({"cpus_per_task": 8}, 2, ExecutorSettings(), BASE).cpu.cpus_per_task == 8


def test_slurm_extra_cannot_override_managed_options():
    with pytest.raises(SlurmSettingsError, match="--partition is not allowed"):
        job_settings({"slurm_extra": "--partition=gpu"}, 1, ExecutorSettings(), BASE)


def test_bad_numbers_are_named():
    with pytest.raises(ValueError, match="resource qpu must be a whole number"):
        qpu_count({"qpu": "one"})
    with pytest.raises(ValueError, match="resource mem_mb"):
        job_settings({"mem_mb": "lots"}, 1, ExecutorSettings(), BASE)


def test_wildcards_give_one_path_component():
    assert wildcards_part({}) == "all"
    assert wildcards_part({"i": "0003", "sample": "a/b c"}) == "i=0003,sample=a_b_c"
