"""Pure tests of request validation and batch-script rendering (no SLURM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcqw.errors import HcqwError
from hcqw.slurm import ComponentSpec, JobRequest, SlurmSettingsError, render_script
from hcqw.slurm.settings import parse_time_limit

CPU = ComponentSpec("cpu")
QPU = ComponentSpec("qpu", gres="qpu:1")


def request(**kw) -> JobRequest:
    base = dict(workflow_id="wf1", node="n1", body="echo hi", components=(CPU,), workdir=Path("/tmp/w"))
    base.update(kw)
    return JobRequest(**base)


@pytest.mark.parametrize(
    ("value", "minutes"),
    [(5, 5), ("5", 5), ("1:30", 2), ("01:00:00", 60), ("1-0", 1440), ("1-02:03", 1563), ("0-00:00:01", 1)],
)
def test_time_limit_spellings_become_minutes(value, minutes):
    assert parse_time_limit(value) == minutes
    assert ComponentSpec("cpu", time_limit=value).time_limit == minutes


@pytest.mark.parametrize("value", [0, -1, "abc", "1:2:3:4", True, 1.5])
def test_bad_time_limits_are_refused(value):
    with pytest.raises(SlurmSettingsError, match="time_limit"):
        ComponentSpec("cpu", time_limit=value)


@pytest.mark.parametrize(
    ("directive", "field"),
    [
        ("--partition=qpu", "ComponentSpec.partition"),
        ("-p qpu", "ComponentSpec.partition"),
        ("-pqpu", "ComponentSpec.partition"),
        ("--gres=qpu:1", "ComponentSpec.gres"),
        ("--job-name x", "JobRequest.name"),
        ("--export=ALL", "JobRequest.environment"),
        ("--dependency=afterok:1", "JobRequest.dependencies"),
    ],
)
def test_managed_options_in_extra_name_the_field_to_use(directive, field):
    with pytest.raises(SlurmSettingsError) as info:
        ComponentSpec("cpu", extra=(directive,))
    assert field in str(info.value)
    assert isinstance(info.value, HcqwError)


def test_extra_must_be_options_without_newlines():
    ComponentSpec("cpu", extra=("--exclusive", "--constraint=fast"))
    for bad in ("hetjob", "--comment=x\n#SBATCH -p qpu", "exclusive"):
        with pytest.raises(SlurmSettingsError):
            ComponentSpec("cpu", extra=(bad,))
    with pytest.raises(SlurmSettingsError, match="sequence"):
        ComponentSpec("cpu", extra="--exclusive")  # type: ignore[arg-type]


@pytest.mark.parametrize("gres", ["qpu", "qpu:1", "gpu:a100:2", "qpu:1,gpu:2"])
def test_valid_gres(gres):
    assert ComponentSpec("qpu", gres=gres).gres == gres


@pytest.mark.parametrize("gres", ["qpu 1", ":1", "qpu:1:x:y", "1qpu", "qpu,"])
def test_invalid_gres_is_refused_early(gres):
    with pytest.raises(SlurmSettingsError, match="gres"):
        ComponentSpec("qpu", gres=gres)


@pytest.mark.parametrize("field", ["nodes", "ntasks", "cpus_per_task", "mem_mb"])
def test_counts_must_be_positive(field):
    with pytest.raises(SlurmSettingsError, match=field):
        ComponentSpec("cpu", **{field: 0})


def test_hetjob_requires_cpu_part_first():
    with pytest.raises(SlurmSettingsError, match="cpu part must come first"):
        request(components=(QPU, CPU))
    with pytest.raises(SlurmSettingsError, match="one ComponentSpec"):
        request(components=(CPU, QPU, CPU))
    with pytest.raises(SlurmSettingsError, match="one ComponentSpec"):
        request(components=())


def test_request_validation():
    with pytest.raises(SlurmSettingsError, match="absolute"):
        request(workdir=Path("rel"))
    with pytest.raises(SlurmSettingsError, match="body"):
        request(body="  \n")
    with pytest.raises(SlurmSettingsError, match="shebang"):
        request(body="#!/bin/sh\necho")
    with pytest.raises(SlurmSettingsError, match="dependencies"):
        request(dependencies=("afterok:12",))
    with pytest.raises(SlurmSettingsError, match="whitespace"):
        request(node="a b")
    with pytest.raises(SlurmSettingsError, match="invalid variable name"):
        request(environment={"A-B": "1"})


@pytest.mark.parametrize("secret", ["SLURM_JWT", "HCQW_SLURM_JWT"])
def test_credentials_cannot_be_exported_to_jobs(secret):
    with pytest.raises(SlurmSettingsError, match=secret) as info:
        request(environment={secret: "eyJhbGciOi.secret.value"})
    assert "secret.value" not in str(info.value)


def test_plain_script():
    text = render_script(
        request(
            components=(ComponentSpec("cpu", account="proj", qos="high", time_limit="00:10:00", mem_mb=512, extra=("--exclusive",)),),
            dependencies=("11", "12"),
            error="err-%j.txt",
        )
    )
    assert text.startswith("#!/bin/bash\n")
    lines = text.splitlines()
    for expected in [
        "#SBATCH --job-name=hcqw:wf1:n1",
        "#SBATCH --comment=hcqw:wf1:n1",
        "#SBATCH --chdir=/tmp/w",
        "#SBATCH --output=hcqw-n1-%j.out",
        "#SBATCH --error=err-%j.txt",
        "#SBATCH --dependency=afterok:11:12",
        "#SBATCH --kill-on-invalid-dep=yes",
        "#SBATCH --partition=cpu",
        "#SBATCH --account=proj",
        "#SBATCH --qos=high",
        "#SBATCH --time=10",
        "#SBATCH --mem=512M",
        "#SBATCH --exclusive",
    ]:
        assert expected in lines
    assert "hetjob" not in text
    assert lines[-1] == "echo hi"
    # All directives come before the first command: sbatch stops reading them there.
    first_cmd = lines.index("echo hi")
    assert all(not line.startswith("#SBATCH") for line in lines[first_cmd:])


def test_hetjob_script_has_cpu_then_qpu_and_job_options_once():
    text = render_script(request(components=(CPU, QPU), environment={"TOKENLIKE": "value-xyz"}))
    lines = text.splitlines()
    split = lines.index("#SBATCH hetjob")
    head, tail = lines[:split], lines[split + 1 :]
    assert "#SBATCH --partition=cpu" in head and "#SBATCH --partition=qpu" in tail
    assert "#SBATCH --gres=qpu:1" in tail and not any("gres" in line for line in head)
    assert sum("--job-name" in line for line in lines) == 1
    # The environment is exported by sbatch/REST, never written into the script.
    assert "value-xyz" not in text


def test_values_with_spaces_are_quoted():
    text = render_script(request(workdir=Path("/tmp/my dir"), comment="a comment"))
    assert '#SBATCH --chdir="/tmp/my dir"' in text
    assert '#SBATCH --comment="a comment"' in text


def test_tag_name_and_comment_defaults():
    req = request(name="custom")
    assert req.tag == "hcqw:wf1:n1"
    assert req.job_name == "custom" and req.job_comment == "hcqw:wf1:n1"
