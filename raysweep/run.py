"""``python -m raysweep.run``: validate a sweep config, run it on Ray Tune, write records and a report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from raysweep.config import ConfigError, SweepConfig, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m raysweep.run",
        description="Sweep calibration sources and mixes x sparsities x pruning methods on Ray Tune; "
        "score every pruned model per capability dimension against the dense model.",
    )
    p.add_argument("--config", help="sweep YAML (default: the embedded toy-world sweep)")
    p.add_argument("--output", help="output directory (overrides output_dir)")
    p.add_argument("--smoke-test", action="store_true", help="a tiny version of the sweep")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the output directory (the default whenever it has records)",
    )
    p.add_argument("--mode", choices=("all", "grid", "search"), default="all")
    p.add_argument("--validate", action="store_true", help="validate, print the config, exit")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    return p


def resolve(args: argparse.Namespace) -> SweepConfig:
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"output_dir={args.output}")
    cfg = load_config(args.config, overrides)
    if args.smoke_test:
        from raysweep.smoke import smoke_config

        cfg = smoke_config(cfg)
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = resolve(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("# resolved configuration\n" + cfg.to_yaml(), flush=True)
    if args.validate:
        return 0
    from raysweep.sweep import run_sweep

    return run_sweep(cfg, mode=args.mode)


if __name__ == "__main__":
    raise SystemExit(main())
