"""The plugin as the Snakemake plugin catalog takes it: the distribution ``snakemake-executor-plugin-hcqw``,
built from plugins/snakemake, installed with the core's wheel into a fresh venv, from the package index.

The catalog installs ``snakemake <distribution>`` into a new environment, reads the settings through
``ExecutorPluginRegistry().get_plugin(name).get_settings_info()``, and renders the repository's
``docs/intro.md`` and ``docs/further.md``. These tests do the same with the two wheels built from this
checkout (through ``hcqw[snakemake]``, which must pull in the plugin), then run a quantum rule with
``snakemake --executor hcqw`` there, away from the checkout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

PLUGIN_PROJECT = ROOT / "plugins" / "snakemake"
DISTRIBUTION = "snakemake-executor-plugin-hcqw"
PACKAGE = "snakemake_executor_plugin_hcqw"


def _version(pyproject: Path) -> str:
    return tomllib.loads(pyproject.read_text())["project"]["version"]


def _setting_flags() -> list[str]:
    from snakemake_executor_plugin_hcqw import ExecutorSettings

    return [f"--hcqw-{field.name.replace('_', '-')}" for field in dataclasses.fields(ExecutorSettings)]


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)


@dataclasses.dataclass
class FreshInstall:
    wheels: dict[str, Path]  # distribution name -> its wheel
    venv: Path
    env: dict[str, str]  # nothing of the checkout on the path
    home: Path

    def python(self, code: str) -> subprocess.CompletedProcess:
        return _run([str(self.venv / "bin" / "python"), "-c", code], self.home, self.env)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> FreshInstall:
    base = tmp_path_factory.mktemp("catalog")
    wheels_dir, venv, home = base / "wheels", base / "venv", base / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels_dir), str(ROOT),
                  str(PLUGIN_PROJECT)], base, env)
    assert built.returncode == 0, built.stdout
    wheels = {"hcqw": next(wheels_dir.glob("hcqw-*.whl")), DISTRIBUTION: next(wheels_dir.glob(f"{PACKAGE}-*.whl"))}
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, env)
    assert made.returncode == 0, made.stdout
    # The dev venv's pip installs into the new venv (pip --python): no pip of its own to bootstrap.
    # Dependencies come from the package index like any user's; --no-compile only skips byte-compiling
    # them (Python compiles what it imports). The extra is how users install it: it must name the plugin.
    installed = _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                      "--no-compile", f"{wheels['hcqw']}[snakemake]", str(wheels[DISTRIBUTION])], base, env,
                     timeout=420)
    assert installed.returncode == 0, installed.stdout
    env["PATH"] = f"{venv / 'bin'}:/usr/bin:/bin"
    return FreshInstall(wheels, venv, env, home)


def _wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _wheel_requires(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        return [Requirement(line.split(":", 1)[1].strip()) for line in archive.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]


def test_the_two_wheels_share_no_file_and_depend_on_each_other_in_step(fresh):
    core, plugin = (_wheel_files(fresh.wheels[name]) for name in ("hcqw", DISTRIBUTION))
    assert not [name for name in core if name.startswith(f"{PACKAGE}/")], "hcqw's wheel must not ship the plugin"
    assert any(name.startswith("hcqw/") for name in core) and any(name.startswith("parsl_hcqw/") for name in core)
    assert {name.split("/")[0] for name in plugin} == {PACKAGE, f"{PACKAGE}-{_version(PLUGIN_PROJECT / 'pyproject.toml')}.dist-info"}
    # Released together: each pins the other's version (the core's only through its snakemake extra).
    plugin_needs = [r for r in _wheel_requires(fresh.wheels[DISTRIBUTION]) if r.name == "hcqw"]
    assert [str(r.specifier) for r in plugin_needs] == [f"=={_version(ROOT / 'pyproject.toml')}"] and not plugin_needs[0].marker
    core_needs = [r for r in _wheel_requires(fresh.wheels["hcqw"]) if r.name == DISTRIBUTION]
    assert [str(r.specifier) for r in core_needs] == [f"=={_version(PLUGIN_PROJECT / 'pyproject.toml')}"]
    assert core_needs[0].marker.evaluate({"extra": "snakemake"}) and not core_needs[0].marker.evaluate({"extra": "parsl"})


def test_the_fresh_venv_runs_the_installed_distributions_not_the_checkout(fresh):
    done = fresh.python("import json, hcqw, importlib.metadata as m, snakemake_executor_plugin_hcqw as p; "
                        f"print(json.dumps([hcqw.__file__, p.__file__, m.distribution('{DISTRIBUTION}').version]))")
    assert done.returncode == 0, done.stdout
    core, plugin, version = json.loads(done.stdout)
    site = str(fresh.venv / "lib")
    assert core.startswith(site) and plugin.startswith(site), (core, plugin)
    assert version == _version(PLUGIN_PROJECT / "pyproject.toml")


def test_snakemake_help_lists_every_setting(fresh):
    done = _run(["snakemake", "--executor", "hcqw", "--help"], fresh.home, fresh.env)
    assert done.returncode == 0, done.stdout
    assert "hcqw executor plugin settings" in done.stdout
    missing = [flag for flag in _setting_flags() if flag not in done.stdout]
    assert not missing, f"snakemake --help in the fresh venv lacks {missing}"


def test_the_catalogs_metadata_query_gives_the_settings(fresh):
    """What the catalog runs in its environment to render the settings table."""
    done = fresh.python("import json; from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry; "
                        "plugin = ExecutorPluginRegistry().get_plugin('hcqw'); "
                        "print(json.dumps([[s['cliarg'], bool(s.get('help'))] for s in plugin.get_settings_info()]))")
    assert done.returncode == 0, done.stdout
    settings = json.loads(done.stdout.splitlines()[-1])
    assert sorted(arg for arg, _ in settings) == sorted(_setting_flags())
    assert all(has_help for _, has_help in settings)


def test_the_catalog_pages_exist_and_name_only_real_settings():
    intro, further = (ROOT / "docs" / f"{page}.md" for page in ("intro", "further"))
    assert intro.read_text().strip() and further.read_text().strip()
    named = set(re.findall(r"--hcqw-[a-z-]+[a-z]", further.read_text()))
    assert named and not named - set(_setting_flags()), f"docs/further.md names unknown flags: {named - set(_setting_flags())}"
    assert "resources: qpu=1" in further.read_text() and "--executor hcqw" in further.read_text()


SNAKEFILE = textwrap.dedent("""
    rule all:
        input: "bell.json"

    rule bell:
        output: "bell.json"
        resources: qpu=1
        run:
            import json
            import cirq
            from hcqw.qpu import open_qpu
            q = cirq.LineQubit.range(2)
            circuit = cirq.Circuit(cirq.H(q[0]), cirq.CNOT(*q), cirq.measure(*q, key="m"))
            with open_qpu(seed=7) as qpu:
                bits = qpu.run(circuit, 50)[0].measurements["m"]
            with open(output[0], "w") as f:
                json.dump({"shots": len(bits), "equal": int((bits[:, 0] == bits[:, 1]).sum())}, f)
""")


def test_a_quantum_rule_runs_with_the_installed_executor(fresh, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    done = _run(["snakemake", "--executor", "hcqw", "--jobs", "1", "--hcqw-poll-interval", "0.5", "--nocolor"],
                tmp_path, fresh.env, timeout=300)
    assert done.returncode == 0, done.stdout
    assert "hcqw executor: backend local" in done.stdout
    assert json.loads((tmp_path / "bell.json").read_text()) == {"shots": 50, "equal": 50}  # a Bell pair
    holds = [json.loads(line) for line in (tmp_path / ".snakemake" / "hcqw" / "metrics" / "qpu.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in holds].count("hold") == 1  # the rule held the device through open_qpu, once
