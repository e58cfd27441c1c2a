"""The ``raysweep`` command: ``raysweep <command> ARGS`` runs one of :data:`COMMANDS`, else the
sweep (``raysweep ARGS`` is ``raysweep run ARGS``, ``python -m raysweep.run ARGS``).

Each command is also reachable as its module (``python -m raysweep.prune``, ``python -m
analysis``, ...). Nothing is imported before the command is known: ``raysweep --help`` lists the
commands at once, and each command parses its flags before loading the library.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# command -> (module whose main(argv) runs it, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("raysweep.run", "the sweep: grid, mix-weight search, report (the default command)"),
    "prune": ("raysweep.prune", "prune one model with one calibration mix; save and score it"),
    "evaluate": ("raysweep.evaluation.__main__", "score a model per capability dimension"),
    "verify": ("raysweep.verify", "check a run's records, side files and dense baselines"),
    "calibration": ("raysweep.calibration.cli", "list sources; build and measure calibration sets"),
    "analysis": ("analysis.__main__", "a run's report, or runs compared (python -m analysis)"),
}
ALIASES = {"analyze": "analysis", "compare": "analysis", "evaluation": "evaluate"}


def commands() -> dict[str, tuple[str, str]]:
    """raysweep's own commands, then those the plug-in worlds add (the toy world's ``train`` and
    ``tradeoff``); a world cannot replace one of raysweep's. Loading the worlds is cheap: their
    registrations import nothing heavy."""
    from raysweep.worlds import registry

    found = dict(COMMANDS)
    for world in registry().worlds:
        for name, entry in world.commands.items():
            found.setdefault(name, entry)
    return found


def usage() -> str:
    table = commands()
    width = max(map(len, table))
    lines = ["usage: raysweep <command> [ARGS ...]   (raysweep <command> --help for its flags)",
             "       raysweep [ARGS ...]             (the sweep: raysweep run ARGS)", "",
             "commands:"]  # fmt: skip
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in table.items()]
    lines += ["", f"aliases: {', '.join(f'{a} = {c}' for a, c in ALIASES.items())}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = ALIASES.get(args[0], args[0]) if args else ""
    if command in ("-h", "--help", "help"):
        print(usage())
        return 0
    table = COMMANDS if command in COMMANDS else commands()
    if command in table:
        args = args[1:]
    else:
        command = "run"  # flags, overrides or nothing: the sweep
    module = importlib.import_module(table[command][0])
    status = module.main(args)
    return 0 if status is None else int(status)


if __name__ == "__main__":
    raise SystemExit(main())
