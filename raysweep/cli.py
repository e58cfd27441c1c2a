"""The ``raysweep`` command: ``raysweep prune ...``, ``raysweep evaluate ...``, ``raysweep verify
RUN``, else the sweep.

``raysweep [run] ARGS`` is ``python -m raysweep.run ARGS``; ``raysweep prune ARGS`` is
``python -m raysweep.prune ARGS``; ``raysweep evaluate ARGS`` is
``python -m raysweep.evaluation ARGS``; ``raysweep verify RUN`` is ``python -m raysweep.verify RUN``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command == "prune":
        from raysweep.prune import main as prune

        return prune(args[1:])
    if command == "evaluate":
        from raysweep.evaluation.__main__ import main as evaluate

        return evaluate(args[1:])
    if command == "verify":
        from raysweep.verify import main as verify

        return verify(args[1:])
    from raysweep.run import main as run

    return run(args[1:] if command == "run" else args)


if __name__ == "__main__":
    raise SystemExit(main())
