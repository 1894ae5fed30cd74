"""The documentation site builds with no warning, and each quick start shows its commands first."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support import ROOT

DOCS = ROOT / "docs"
QUICK_STARTS = sorted((DOCS / "quickstart").glob("*.md"))
FIRST_SCREEN = 40  # lines
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_the_site_builds_strict_with_no_warning(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's end-of-life banner is not a build warning
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = ANSI.sub("", result.stdout + result.stderr)
    warnings = [line for line in output.splitlines() if line.lstrip().startswith(("WARNING", "ERROR"))]
    assert result.returncode == 0 and not warnings, output
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for documented in ("hcqw.qpu.open_qpu", "hcqw.workflow.HybridLoop", "hcqw.codec.decode_circuit", "parsl_hcqw"):
        assert f'id="{documented}"' in api, f"the API page lost {documented}"


def test_there_is_a_quick_start_per_audience():
    assert {p.stem for p in QUICK_STARTS} >= {"snakemake", "parsl", "pipelines", "frameworks"}


@pytest.mark.parametrize("page", QUICK_STARTS, ids=lambda p: p.stem)
def test_a_quick_start_shows_its_three_commands_on_the_first_screen(page):
    lines = page.read_text(encoding="utf-8").splitlines()[:FIRST_SCREEN]
    assert "```bash" in lines, f"{page.name}: no fenced bash block in its first {FIRST_SCREEN} lines"
    start = lines.index("```bash") + 1
    assert "```" in lines[start:], f"{page.name}: its first bash block does not end within {FIRST_SCREEN} lines"
    block = lines[start:lines.index("```", start)]
    commands = [line for line in block if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) >= 3, f"{page.name}: {len(commands)} commands in its first bash block, want 3"


def test_the_readme_is_a_front_page_whose_links_lead_somewhere():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    assert text.split("```bash\n", 1)[1].startswith("bash scripts/demo.sh") and "bash scripts/test.sh" in text
    for page in ("quickstart/snakemake.md", "quickstart/parsl.md", "quickstart/pipelines.md", "quickstart/frameworks.md"):
        assert f"(docs/{page})" in text
    for link in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", text):
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"
