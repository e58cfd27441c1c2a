"""The tree stays ruff-clean (lint rules and formatting, as configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_ruff_format_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", str(ROOT)],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
