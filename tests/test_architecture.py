"""The package's shape: no import loop between core packages, and each one imports on its own.

A "core package" is a direct part of ``hcqw``: a subpackage (``hcqw.device``) or a top-level
module (``hcqw.qpu``). Every ``import`` statement counts, also those inside functions: a lazy
import hides a loop from the interpreter, not from a reader.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict

import pytest

from tests.support import ROOT

PACKAGE = ROOT / "hcqw"


def core_parts() -> list[str]:
    """``hcqw.<name>`` for each subpackage and top-level module."""
    parts = [p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    parts += [p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]
    return sorted(f"hcqw.{name}" for name in parts)


def _part_of(module: str, parts: set[str]) -> str | None:
    pieces = module.split(".")
    return ".".join(pieces[:2]) if len(pieces) >= 2 and ".".join(pieces[:2]) in parts else None


def _imported(tree: ast.AST, package: str) -> list[tuple[str, int]]:
    """Every module an import statement names (``from a import b`` names ``a`` and ``a.b``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def import_graph() -> dict[str, dict[str, str]]:
    """``graph[a][b]`` = where core part ``a`` first imports core part ``b`` (``file:line``)."""
    parts = set(core_parts())
    graph: dict[str, dict[str, str]] = defaultdict(dict)
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        source = _part_of(module.removesuffix(".__init__"), parts)
        for name, line in _imported(ast.parse(path.read_text(), str(path)), package):
            target = _part_of(name, parts)
            if source and target and target != source:
                graph[source].setdefault(target, f"{path.relative_to(ROOT)}:{line}")
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_loop():
    assert cycles({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}, "d": {"a": ""}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": ""}, "b": {}}) == []


def test_the_scan_sees_lazy_imports():
    graph = import_graph()
    # hcqw.qpu chooses a provider inside a function: still an edge
    assert "hcqw.hetjob" in graph["hcqw.qpu"] and "hcqw.service" in graph["hcqw.qpu"]


def test_no_import_loop_between_core_packages():
    graph = import_graph()
    loops = cycles(graph)
    described = [" -> ".join(loop) + ": " + "; ".join(f"{a} -> {b} at {graph[a][b]}" for a in loop for b in loop
                                                     if b in graph.get(a, {})) for loop in loops]
    assert not loops, "import loops between core packages:\n" + "\n".join(described)


@pytest.mark.parametrize("part", core_parts())
def test_each_core_package_imports_in_a_fresh_interpreter(part):
    done = subprocess.run([sys.executable, "-c", f"import {part}"], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr


#: Each adapter package and where it lives (the Snakemake plugin is its own distribution, plugins/snakemake).
ADAPTERS = {"parsl_hcqw": ROOT / "parsl_hcqw",
            "snakemake_executor_plugin_hcqw": ROOT / "plugins" / "snakemake" / "snakemake_executor_plugin_hcqw"}


def exports(module: str) -> set[str] | None:
    """What a core module exports: its ``__all__``, or where it has none, the public names it defines
    itself (not those it imports); None if ``module`` is not a file of the core."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    if not path.exists():
        return None
    tree = ast.parse(path.read_text())
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names = {t.id for t in node.targets if isinstance(t, ast.Name)}
            if "__all__" in names:
                return set(ast.literal_eval(node.value))
            defined |= names
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
    return {name for name in defined if not name.startswith("_")}


def _declares_all(package: str) -> bool:
    init = ROOT / package.replace(".", "/") / "__init__.py"
    return init.exists() and any(isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets) for node in ast.parse(init.read_text()).body)


def adapter_imports() -> list[tuple[str, str, str]]:
    """``(where, module, name)`` for every ``from hcqw... import name`` in the adapters."""
    found = []
    for directory in ADAPTERS.values():
        for path in sorted(directory.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "hcqw":
                    found += [(f"{path.relative_to(ROOT)}:{node.lineno}", node.module, alias.name)
                              for alias in node.names]
    return found


def test_the_exports_rule_tells_own_names_from_imported_ones():
    assert "open_qpu" in exports("hcqw.qpu") and "os" not in exports("hcqw.qpu")
    assert "LocalDevice" in exports("hcqw.device") and "_user" not in (exports("hcqw.metrics") or set())


def test_adapters_import_only_what_the_core_exports():
    """From a module, its exports; from a module of a package with an ``__all__`` (``hcqw.slurm``),
    only what the package exports too."""
    assert adapter_imports(), "the scan found no imports of the core in the adapters"
    wrong = []
    for where, module, name in adapter_imports():
        if (ROOT / (module.replace(".", "/") + "/" + name + ".py")).exists():
            continue  # a module of a package (``from hcqw import environment``)
        exported = exports(module)
        package = ".".join(module.split(".")[:2])
        hidden_by_package = package != module and _declares_all(package) and name not in (exports(package) or ())
        if exported is None or name not in exported or hidden_by_package:
            wrong.append(f"{where}: {module}.{name}")
    assert not wrong, "adapters import what the core does not export:\n" + "\n".join(wrong)


def test_each_command_is_the_module_of_its_name():
    """``hcqw <command>`` is ``hcqw/cli/<command>.py``, which registers that command and no other."""
    import argparse
    import importlib

    from hcqw.cli import COMMANDS

    modules = sorted(p.stem for p in (PACKAGE / "cli").glob("*.py") if p.stem != "__init__")
    assert modules == sorted(COMMANDS)
    for command in COMMANDS:
        subparsers = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"hcqw.cli.{command}").register(subparsers)
        assert list(subparsers.choices) == [command], f"hcqw/cli/{command}.py registers {list(subparsers.choices)}"


def architecture_table() -> dict[str, str]:
    """The code's layout table (docs/about.md, "How the code is laid out"): where -> what."""
    text = (ROOT / "docs" / "about.md").read_text().split("\n## How the code is laid out\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_readme_architecture_table_names_only_what_is_there():
    import re

    rows = architecture_table()
    assert len(rows) > 10, "the code's layout table (docs/about.md) was not found"
    missing = [where for where in rows if not (ROOT / where).exists()]
    for where, what in rows.items():
        if where.endswith("/"):  # a package: the modules and folders its row names are in it
            missing += [f"{where}{name}" for name in re.findall(r"`([\w./]+(?:\.py|/))`", what)
                        if not (ROOT / where / name).exists()]
    assert not missing, f"docs/about.md's layout table names what the tree does not have: {missing}"


def test_readme_architecture_table_has_every_core_package_and_module():
    rows = architecture_table()
    parts = [f"hcqw/{p.name}/" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    parts += [f"hcqw/{p.name}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]
    assert sorted(set(parts) - set(rows)) == [], "docs/about.md's layout table lacks these parts of hcqw"


FRAMEWORK_PARTS = {"pennylane": "hcqw.pennylane", "qiskit": "hcqw.qiskit"}  # framework -> the one part that imports it


def framework_imports(framework: str) -> list[str]:
    """``file:line`` of every import of ``framework`` outside its own part of hcqw: in the core and the adapters."""
    own = ROOT / FRAMEWORK_PARTS[framework].replace(".", "/")
    found = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(p for adapter in ADAPTERS for p in (ROOT / adapter).rglob("*.py"))]):
        if own in path.parents:
            continue
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        found += [f"{path.relative_to(ROOT)}:{line}" for name, line in _imported(ast.parse(path.read_text()), package)
                  if name.split(".")[0] == framework]
    return found


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_PARTS))
def test_the_framework_scan_sees_the_frameworks_own_part(framework):
    part = FRAMEWORK_PARTS[framework]
    own = [f"{p.relative_to(ROOT)}:{line}" for p in (ROOT / part.replace(".", "/")).rglob("*.py")
           for name, line in _imported(ast.parse(p.read_text()), part) if name.split(".")[0] == framework]
    assert own, f"the scan found no {framework} import in {part}"


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_PARTS))
def test_only_the_frameworks_own_part_imports_it(framework):
    """The core and the engine adapters work without the framework installed (it is an extra)."""
    assert framework_imports(framework) == [], f"{framework} imported outside {FRAMEWORK_PARTS[framework]}"


def test_the_core_and_adapters_import_no_framework_in_a_fresh_interpreter():
    """Importing every core part and adapter loads no framework module (the static scan's runtime twin)."""
    modules = [m for m in [*core_parts(), *ADAPTERS] if m not in FRAMEWORK_PARTS.values()]
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FRAMEWORK_PARTS)!r})\n"
            "print(loaded); assert not loaded")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
