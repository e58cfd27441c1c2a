"""The built package admits the Python versions researchers run (3.11, 3.12, 3.13)."""

from __future__ import annotations

import email.parser
import subprocess
import sys
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_metadata_admits_python_3_11_to_3_13(tmp_path):
    # setuptools' own PEP 517 hook writes the wheel's METADATA (no full build, no network).
    script = (
        "import sys, setuptools.build_meta as b; "
        "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]  # fmt: skip
    metadata = email.parser.Parser().parsestr((tmp_path / out / "METADATA").read_text())
    requires = SpecifierSet(metadata["Requires-Python"])
    for version in ("3.11", "3.12", "3.13"):
        assert version in requires, (version, str(requires))
        assert f"Programming Language :: Python :: {version}" in metadata.get_all("Classifier")
