"""How a Snakemake job's resources become SLURM components (pure logic, no cluster)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from hcqw.hetjob.jobs import NodeJobSettings, command_request
from hcqw.slurm import SlurmSettingsError, render_script

from snakemake_executor_plugin_hcqw import ExecutorSettings
from snakemake_executor_plugin_hcqw.resources import job_settings, per_call, qpu_count, wildcards_part

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


# -- SLURM-plugin resources: the rendered job script shows what SLURM is asked for ----------

def _script(resources, *, threads=1, quantum=False, settings=None):
    job = job_settings(resources, threads, settings or ExecutorSettings(), BASE)
    request = command_request("true", workflow="wf", name="rule", workdir=Path("/srv/run"), settings=job,
                              quantum=quantum, env_base={})
    return render_script(request)


def _components(script):
    """The #SBATCH lines of each component (job-wide identity lines dropped)."""
    parts = [[]]
    for line in script.splitlines():
        if line == "#SBATCH hetjob":
            parts.append([])
        elif line.startswith("#SBATCH ") and not line.startswith(("#SBATCH --job-name", "#SBATCH --comment",
                                                                  "#SBATCH --chdir", "#SBATCH --output")):
            parts[-1].append(line.removeprefix("#SBATCH "))
    return parts


def test_mem_mb_per_cpu_becomes_mem_per_cpu_and_wins_over_mem_mb(caplog):
    (cpu,) = _components(_script({"mem_mb_per_cpu": 1500}))
    assert "--mem-per-cpu=1500M" in cpu and not any(o.startswith("--mem=") for o in cpu)
    # A profile's --default-resources mem_mb must not override a rule's mem_mb_per_cpu; the loser is named.
    with caplog.at_level(logging.WARNING, logger="snakemake_executor_plugin_hcqw.resources"):
        (cpu,) = _components(_script({"mem_mb_per_cpu": 700, "mem_mb": 4000}))
    assert "--mem-per-cpu=700M" in cpu and not any(o.startswith("--mem=") for o in cpu)
    assert "mem_mb_per_cpu wins" in caplog.text
    (cpu,) = _components(_script({"mem_mb": 4000}))
    assert "--mem=4000M" in cpu and not any(o.startswith("--mem-per-cpu") for o in cpu)


def test_tasks_nodes_and_tasks_per_node_reach_the_script():
    (cpu,) = _components(_script({"tasks": 4, "cpus_per_task": 2}))
    assert ("--nodes=1", "--ntasks=4", "--cpus-per-task=2") == tuple(o for o in cpu if o.startswith(
        ("--nodes", "--ntasks", "--cpus")))
    (cpu,) = _components(_script({"nodes": 2, "tasks_per_node": 3}))
    # --ntasks is always written, so it is nodes x tasks_per_node: a bare --ntasks=1 would cap the job at one rank.
    assert [o for o in cpu if o.startswith(("--nodes", "--ntasks"))] == [
        "--nodes=2", "--ntasks=6", "--ntasks-per-node=3"]


def test_tasks_and_tasks_per_node_together_are_refused():
    with pytest.raises(ValueError, match="tasks=4 and tasks_per_node=2 are both set"):
        job_settings({"tasks": 4, "tasks_per_node": 2}, 1, ExecutorSettings(), BASE)


def test_gpu_resources_become_gpus_or_gres():
    assert "--gpus=2" in _components(_script({"gpu": 2}))[0]
    assert "--gpus=a100:1" in _components(_script({"gpu": 1, "gpu_model": "a100"}))[0]
    assert "--gres=gpu:tesla:2" in _components(_script({"gres": "gpu:tesla:2"}))[0]
    assert not any(o.startswith(("--gpus", "--gres")) for o in _components(_script({"gpu": 0}))[0])
    with pytest.raises(ValueError, match="gpu_model='a100' needs gpu"):
        job_settings({"gpu_model": "a100"}, 1, ExecutorSettings(), BASE)
    with pytest.raises(ValueError, match="gres='gpu:1' and gpu are both set"):
        job_settings({"gres": "gpu:1", "gpu": 1}, 1, ExecutorSettings(), BASE)
    with pytest.raises(ValueError, match="use resources qpu=1"):
        job_settings({"gres": "qpu:1"}, 1, ExecutorSettings(), BASE)


def test_quantum_job_cpu_component_takes_the_resources_qpu_component_keeps_its_request():
    resources = {"qpu": 1, "runtime": 30, "slurm_account": "chem", "nodes": 2, "tasks_per_node": 2,
                 "mem_mb_per_cpu": 500, "mem_mb": 9000, "gpu": 1, "constraint": "avx2"}
    cpu, qpu = _components(_script(resources, quantum=True, settings=ExecutorSettings(qpu_runtime=5)))
    assert {"--nodes=2", "--ntasks=4", "--ntasks-per-node=2", "--mem-per-cpu=500M", "--gpus=1",
            "--constraint=avx2", "--time=30", "--account=chem"} <= set(cpu)
    assert qpu == ["--partition=qpu", "--account=chem", "--time=5", "--nodes=1", "--ntasks=1",
                   "--cpus-per-task=1", "--gres=qpu:1"]


def test_slurm_extra_cannot_take_options_a_resource_owns():
    with pytest.raises(ValueError, match="--ntasks-per-node is not allowed in resource slurm_extra.*tasks_per_node"):
        job_settings({"slurm_extra": "--ntasks-per-node=2"}, 1, ExecutorSettings(), BASE)
    with pytest.raises(ValueError, match="--mem-per-cpu is not allowed.*mem_mb_per_cpu"):
        job_settings({"slurm_extra": "--mem-per-cpu=1G"}, 1, ExecutorSettings(), BASE)
    with pytest.raises(ValueError, match="-C is not allowed.*constraint"):
        job_settings({"slurm_extra": "-Cavx", "constraint": "avx2"}, 1, ExecutorSettings(), BASE)
    # Without the competing resource the option is the user's to pass.
    assert "--gpus=1" in job_settings({"slurm_extra": "--gpus=1"}, 1, ExecutorSettings(), BASE).cpu.extra


def test_rest_backend_refuses_resources_that_need_sbatch_options():
    with pytest.raises(ValueError, match="mem_mb_per_cpu, tasks_per_node become sbatch options.*--hcqw-backend slurm"):
        job_settings({"mem_mb_per_cpu": 100, "tasks_per_node": 2}, 1, ExecutorSettings(backend="rest"), BASE)
    rest = job_settings({"tasks": 3, "nodes": 1, "mem_mb": 100}, 1, ExecutorSettings(backend="rest"), BASE).cpu
    assert (rest.ntasks, rest.nodes, rest.mem_mb, rest.extra) == (3, 1, 100, ())


@pytest.mark.parametrize(("name", "value", "message"), [
    ("tasks", 0, "resource tasks must be a whole number >= 1, got 0"),
    ("nodes", -2, "resource nodes must be a whole number >= 1, got -2"),
    ("tasks_per_node", 1.5, "resource tasks_per_node must be a whole number, got 1.5"),
    ("mem_mb_per_cpu", "lots", "resource mem_mb_per_cpu must be a whole number, got 'lots'"),
    ("mem_mb_per_cpu", -100, "resource mem_mb_per_cpu must be a whole number >= 1, got -100"),
    ("mem_mb", -5, "resource mem_mb must be a whole number >= 1, got -5"),
    ("cpus_per_task", True, "resource cpus_per_task must be a whole number, got True"),
    ("gpu", -1, "resource gpu must be a whole number >= 0, got -1"),
    ("gpu_model", "a100 ", "resource gpu_model must be a GPU type name"),
    ("qpu", -1, "resource qpu must be a whole number >= 0, got -1"),
])
def test_bad_resource_values_name_the_resource(name, value, message):
    # The executor prefixes "hcqw: rule <name> was not submitted:", so the message names the resource.
    resources = {name: value, **({"gpu": 1} if name == "gpu_model" else {})}
    with pytest.raises(ValueError, match=re.escape(message)):
        if name == "qpu":
            qpu_count(resources)
        else:
            job_settings(resources, 1, ExecutorSettings(), BASE)


def test_qpu_per_call_is_a_cpu_job_whose_calls_get_the_qpu_settings():
    """``qpu="per-call"``: the word of ``HCQW_DEVICE``; no qpu component (qpu_count 0), the calls' jobs from the
    qpu settings, and any other word named with both choices."""
    resources = {"qpu": "per-call", "runtime": 30}
    assert per_call(resources) and qpu_count(resources) == 0
    assert not per_call({"qpu": 1}) and not per_call({})
    settings = job_settings(resources, 1, ExecutorSettings(qpu_partition="quantum", qpu_gres="qpu:ibmq:1"), BASE)
    assert (settings.qpu.partition, settings.qpu.gres) == ("quantum", "qpu:ibmq:1")
    with pytest.raises(ValueError, match=r"resource qpu must be a whole number .* or 'per-call' .* got 'percall'"):
        qpu_count({"qpu": "percall"})
