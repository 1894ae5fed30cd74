"""The resident QPU service of each qpu host, run the way a site runs it: from its systemd unit.

The lab renders the site fragment ``hcqw-qpu.service`` (the unit docs/site-guide.md
gives an admin) for each qpu host and runs its ``ExecStart`` as its ``User`` inside
that host's network namespace. So this module is the one place that decides the
service's command line, and what the lab runs is what the guide tells a site to run.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hcqw.lab import config
from hcqw.lab.errors import LabError
from hcqw.lab.layout import Layout
from hcqw.lab.software import SiteSoftware

#: The simulator behind each resident service unless the lab is told otherwise.
DEFAULT_SIMULATOR = "qsim"
#: Where each resident service serves its Prometheus metrics: the loopback of its own qpu host (each
#: host is a network namespace), so only a process on that host (root's scrape in the tests) reaches it.
METRICS_ADDRESS = "127.0.0.1:9464"


def daemon_name(node: str) -> str:
    return f"qpu-service-{node}"


def metrics_log(layout: Layout, node: str) -> Path:
    """The service's QPU timeline (JSON lines): who used the device when."""
    return layout.qpu_service_dir(node) / "qpu.jsonl"


def render_unit(layout: Layout, site: SiteSoftware, node: str, simulator: str = DEFAULT_SIMULATOR) -> str:
    """The systemd unit of the resident service on ``node``, filled in for this lab."""
    socket = layout.qpu_service_address(node).removeprefix("ipc://")
    return config.render_fragment("hcqw-qpu.service", venv=site.venv, socket=socket, simulator=simulator,
                                  log=metrics_log(layout, node), grants=layout.grants_dir(node),
                                  spool=layout.spool / node,
                                  metrics_address=METRICS_ADDRESS,
                                  staging_options=staging_options(layout.staging_depth))


def staging_options(depth: int) -> str:
    """The service's options for a qpu host whose gres lets SLURM place ``depth`` jobs at once: with
    staging, the device executes one session at a time and the others wait with their runs queued."""
    return " --exclusive-sessions" if depth > 1 else ""


def service_command(unit: str) -> tuple[str, list[str]]:
    """(User, ExecStart argv) of a unit's ``[Service]`` section."""
    settings: dict[str, str] = {}
    section = ""
    for line in unit.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    if "User" not in settings or "ExecStart" not in settings:
        raise LabError("the hcqw-qpu.service fragment has no User= or ExecStart= in its [Service] section")
    return settings["User"], shlex.split(settings["ExecStart"])
