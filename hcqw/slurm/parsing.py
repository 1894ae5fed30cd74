"""Parse SLURM's own reports into :class:`ComponentInfo` records.

Three sources, one record type: ``scontrol -o show job`` (no accounting
needed; finished jobs stay for MinJobAge seconds), ``sacct -X --parsable2``
(needs slurmdbd) and slurmrestd's job JSON (v0.0.38). Pure functions of text,
so they are unit-tested against captured output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from hcqw.slurm.states import ComponentInfo, normalize_state

# A space that starts a new Key=Value pair. Values may contain spaces (job
# names, comments, commands), keys never do; keys may hold '/' or ':'
# (Socks/Node, ReqB:S:C:T).
_FIELD_SPLIT = re.compile(r" (?=[A-Za-z][A-Za-z0-9_/:]*=)")
_UNSET = {"", "(null)", "Unknown", "None", "N/A"}

#: sacct fields read by :func:`parse_sacct`, in this order. JobName comes last: it is the one
#: field a user may put a '|' into, so a row is split into at most this many parts.
SACCT_FIELDS = ("JobID", "JobIDRaw", "State", "ExitCode", "Partition", "NodeList", "Submit", "Start", "End", "Reason",
                "User", "Account", "AllocTRES", "JobName")


def _time(value: str | None) -> datetime | None:
    if value is None or value in _UNSET:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _text(value: str | None) -> str | None:
    return None if value is None or value in _UNSET else value


def parse_tres(text: str | None) -> dict[str, str]:
    """``'billing=1,cpu=1,gres/qpu=1,node=1'`` (sacct AllocTRES, scontrol TRES) -> ``{'gres/qpu': '1', ...}``."""
    if not text or text in _UNSET:
        return {}
    return dict(item.partition("=")[::2] for item in text.split(",") if "=" in item)


def gres_count(tres: str | None, name: str) -> int:
    """How many of GRES ``name`` a TRES string holds: ``gres/qpu=1`` -> 1 (a typed ``gres/qpu:t=1``
    is counted only when no untyped total is given, since SLURM lists the total beside the types)."""
    items = parse_tres(tres)
    key = f"gres/{name}"
    if key in items:
        return _count(items[key])
    return sum(_count(value) for item, value in items.items() if item.startswith(key + ":"))


def _count(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _user(value: str | None) -> str | None:
    """``'root(0)'`` (scontrol UserId) -> ``'root'``."""
    text = _text(value)
    return text.split("(", 1)[0] if text else None


def parse_exit_code(value: str | None) -> tuple[int | None, int | None]:
    """``'1:0'`` -> ``(1, 0)`` (exit code, signal); unparsable -> ``(None, None)``."""
    if not value or ":" not in value:
        return None, None
    code, _, sig = value.partition(":")
    try:
        return int(code), int(sig)
    except ValueError:
        return None, None


def parse_scontrol_record(line: str) -> dict[str, str]:
    """One ``scontrol -o show job`` line as a dict of its Key=Value pairs."""
    fields: dict[str, str] = {}
    for chunk in _FIELD_SPLIT.split(line.strip()):
        key, sep, value = chunk.partition("=")
        if sep:
            fields.setdefault(key, value)
    return fields


def component_from_scontrol(fields: Mapping[str, str]) -> ComponentInfo:
    """A :class:`ComponentInfo` from one parsed ``scontrol`` record."""
    job_id = fields["JobId"]
    het_leader = _text(fields.get("HetJobId"))
    offset_text = _text(fields.get("HetJobOffset"))
    if het_leader and offset_text is not None:
        offset: int | None = int(offset_text)
        leader = het_leader
        public_id = f"{het_leader}+{offset}"
    else:
        offset, leader, public_id = None, job_id, job_id
    code, sig = parse_exit_code(fields.get("ExitCode"))
    return ComponentInfo(
        job_id=public_id,
        leader_id=leader,
        het_offset=offset,
        state=normalize_state(fields.get("JobState", "UNKNOWN")),
        exit_code=code,
        signal=sig,
        partition=_text(fields.get("Partition")),
        nodelist=_text(fields.get("NodeList")),
        start_time=_time(fields.get("StartTime")),
        end_time=_time(fields.get("EndTime")),
        submit_time=_time(fields.get("SubmitTime")),
        reason=_text(fields.get("Reason")),
        name=_text(fields.get("JobName")),
        comment=_text(fields.get("Comment")),
        stdout=_text(fields.get("StdOut")),
        raw_id=job_id,
        user=_user(fields.get("UserId")),
        account=_text(fields.get("Account")),
        tres=_text(fields.get("TRES")),
    )


def parse_scontrol(text: str) -> list[ComponentInfo]:
    """All job records of ``scontrol -o show job`` output (one line per job)."""
    records = []
    for line in text.splitlines():
        if line.startswith("JobId="):
            records.append(component_from_scontrol(parse_scontrol_record(line)))
    return records


def parse_sacct(text: str) -> list[ComponentInfo]:
    """Rows of ``sacct -X --parsable2 --noheader --format=<SACCT_FIELDS>``.

    With ``-X`` sacct prints one row per allocation: ``123`` for a plain
    job, ``123+0`` and ``123+1`` for hetjob components. Step rows
    (``123.batch``) are skipped should ``-X`` be missing.
    """
    records = []
    for line in text.splitlines():
        parts = line.split("|", len(SACCT_FIELDS) - 1)
        if len(parts) != len(SACCT_FIELDS):
            continue
        row = dict(zip(SACCT_FIELDS, parts))
        job_id = row["JobID"]
        if "." in job_id:
            continue
        leader, plus, offset_text = job_id.partition("+")
        offset = int(offset_text) if plus else None
        code, sig = parse_exit_code(row["ExitCode"])
        records.append(
            ComponentInfo(
                job_id=job_id,
                leader_id=leader,
                het_offset=offset,
                state=normalize_state(row["State"]),
                exit_code=code,
                signal=sig,
                partition=_text(row["Partition"]),
                nodelist=_text(row["NodeList"]),
                start_time=_time(row["Start"]),
                end_time=_time(row["End"]),
                submit_time=_time(row["Submit"]),
                reason=_text(row["Reason"]),
                name=_text(row["JobName"]),
                raw_id=row["JobIDRaw"],
                user=_text(row["User"]),
                account=_text(row["Account"]),
                tres=_text(row["AllocTRES"]),
            )
        )
    return records


def _epoch(value: Any) -> datetime | None:
    # slurmrestd v0.0.38 reports times as epoch seconds, 0 meaning "not yet".
    if isinstance(value, dict):  # later API versions wrap numbers: {"set":..,"number":..}
        value = value.get("number") if value.get("set", True) else None
    if not isinstance(value, (int, float)) or value <= 0:
        return None
    return datetime.fromtimestamp(value)


def _rest_exit(job: Mapping[str, Any]) -> tuple[int | None, int | None]:
    # v0.0.38 gives the raw wait(2) status as an int: exit code in the high byte, signal in the low bits.
    raw = job.get("exit_code")
    if isinstance(raw, dict):
        raw = raw.get("number")
    if not isinstance(raw, int) or isinstance(raw, bool):
        return None, None
    if raw & 0x7F:
        return None, raw & 0x7F
    return (raw >> 8) & 0xFF, 0


def component_from_rest(job: Mapping[str, Any]) -> ComponentInfo:
    """A :class:`ComponentInfo` from one entry of slurmrestd's ``jobs`` list."""
    job_id = str(job["job_id"])
    het_leader = job.get("het_job_id") or 0
    offset = job.get("het_job_offset")
    if het_leader and offset is not None and not isinstance(offset, dict):
        leader, public_id = str(het_leader), f"{het_leader}+{offset}"
    else:
        offset, leader, public_id = None, job_id, job_id
    code, sig = _rest_exit(job)
    state = job.get("job_state", "UNKNOWN")
    if isinstance(state, list):  # later API versions: a list of state + flags
        state = state[0] if state else "UNKNOWN"
    return ComponentInfo(
        job_id=public_id,
        leader_id=leader,
        het_offset=offset,
        state=normalize_state(str(state)),
        exit_code=code,
        signal=sig,
        partition=_text(job.get("partition")),
        nodelist=_text(job.get("nodes")),
        start_time=_epoch(job.get("start_time")),
        end_time=_epoch(job.get("end_time")),
        submit_time=_epoch(job.get("submit_time")),
        reason=_text(job.get("state_reason")),
        name=_text(job.get("name")),
        comment=_text(job.get("comment")),
        stdout=_text(job.get("standard_output")),
        raw_id=job_id,
        user=_text(job.get("user_name")),
        account=_text(job.get("account")),
        tres=_text(job.get("tres_alloc_str")),
    )


def group_by_leader(records: Iterable[ComponentInfo]) -> dict[str, list[ComponentInfo]]:
    """Records keyed by leader job id (a plain job is its own leader)."""
    groups: dict[str, list[ComponentInfo]] = {}
    for rec in records:
        groups.setdefault(rec.leader_id, []).append(rec)
    return groups
