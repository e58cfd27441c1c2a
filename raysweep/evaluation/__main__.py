"""``python -m raysweep.evaluation --prefetch (--suite NAME | --config PATH)``.

Downloads every dataset of a suite into this node's Hugging Face cache, once per node: a marker
file under the raysweep cache records a finished prefetch (``--force`` repeats it). Trials can then
run with ``HF_HUB_OFFLINE=1``, avoiding Hub rate limits and concurrent-download races.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from raysweep.evaluation._files import atomic_write_json, file_lock
from raysweep.evaluation.dimensions import Suite, get_suite, suite_from_mapping
from raysweep.evaluation.harness import prefetch_suite


def _suite_from_config(path: str) -> tuple[Suite, bool]:
    from raysweep.config import load_config

    config = load_config(path)
    spec = config.evaluation.suite
    # An inline suite's relative include_path is relative to the config file.
    suite = (
        get_suite(spec) if isinstance(spec, str) else suite_from_mapping(spec, Path(path).parent)
    )
    return suite, bool(config.evaluation.perplexity)


def prefetch_once(
    suite: Suite, *, perplexity: bool, marker_dir: Path, force: bool
) -> dict[str, Any]:
    """Prefetch under a node-wide lock; a marker makes later calls on this node return at once."""
    marker = marker_dir / f"{suite.name}-{suite.fingerprint()}{'-ppl' if perplexity else ''}.json"
    with file_lock(marker_dir / f".{marker.stem}.lock"):
        if marker.is_file() and not force:
            return {**json.loads(marker.read_text()), "already_done": True}
        tasks = prefetch_suite(suite, perplexity=perplexity)
        info = {"suite": suite.name, "tasks": tasks, "perplexity": perplexity}
        atomic_write_json(marker, info)
        return {**info, "already_done": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m raysweep.evaluation", description=__doc__)
    parser.add_argument("--prefetch", action="store_true", help="download the suite's datasets")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--suite", help="suite name: study, fast or toy")
    source.add_argument("--config", help="sweep config whose evaluation.suite is prefetched")
    parser.add_argument("--perplexity", action="store_true", help="also fetch the held-out corpus")
    parser.add_argument("--force", action="store_true", help="prefetch even if done on this node")
    args = parser.parse_args(argv)
    if not args.prefetch:
        parser.error("nothing to do: pass --prefetch")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        if args.config:
            suite, perplexity = _suite_from_config(args.config)
        else:
            suite, perplexity = get_suite(args.suite), False
    except ValueError as err:  # also the config module's ConfigError
        parser.error(str(err))
    from raysweep.paths import cache_dir

    info = prefetch_once(
        suite,
        perplexity=perplexity or args.perplexity,
        marker_dir=cache_dir() / "prefetch",
        force=args.force,
    )
    state = "already prefetched on this node" if info["already_done"] else "prefetched"
    print(
        f"suite {suite.name!r}: {state}: {len(info['tasks'])} task(s): {', '.join(info['tasks'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
