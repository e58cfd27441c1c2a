"""The documentation: a short README whose links resolve, pages that ``mkdocs build --strict``
builds (a link to a page that moved or vanished fails it), and a configuration reference that is
what the schema generates."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from raysweep.config_reference import markdown

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 8 * 1024


def test_the_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= README_LIMIT
    assert ".venv/bin/python -m pytest -q" in text  # the test command CI runs
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local and all((ROOT / t).is_file() for t in local), local


def test_every_page_is_in_the_navigation():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = {page for entry in nav for page in entry.values()}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert pages == listed


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "configuration-reference" / "index.html").is_file()


def test_the_configuration_reference_is_what_the_schema_generates():
    committed = (ROOT / "docs" / "configuration-reference.md").read_text()
    assert committed == markdown(), "run: python -m raysweep.config_reference > " \
        "docs/configuration-reference.md"  # fmt: skip
    assert "| `pruning.ignore` |" in committed and "## calibration.mixes[]" in committed
