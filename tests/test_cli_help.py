"""``raysweep --help`` lists every command; each command's ``--help`` answers before the library
(torch, transformers, Ray, lm-eval) loads; ``raysweep analysis`` reaches ``python -m analysis``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from raysweep.cli import ALIASES, COMMANDS, commands, main

HEAVY = ("torch", "transformers", "ray", "lm_eval", "optuna")
# train is the toy world's trainer: it loads torch to build its model config.
FAST = [c for c in commands() if c != "train"]

_PROBE = """
import sys
from raysweep.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
print("loaded:", ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def test_raysweep_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in [*commands(), *ALIASES]:
        assert f"  {command} " in out or f"{command} = " in out, command
    # The toy world's tools come from its plug-in registration, not from raysweep's core.
    assert {"train", "tradeoff"} <= set(commands()) - set(COMMANDS)


@pytest.mark.parametrize("command", FAST)
def test_a_commands_help_loads_no_heavy_library(command):
    probe = _PROBE.format(heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe, command, "--help"], capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    assert "usage:" in done.stdout
    assert done.stdout.splitlines()[-1] == "loaded: ", done.stdout.splitlines()[-1]


def test_analysis_dispatches_to_python_m_analysis(tmp_path, capsys):
    # No override error: the run directory is analysis's own argument.
    assert main(["analysis", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "override" not in err and "error:" in err
