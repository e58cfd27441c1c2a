"""Per-trial evaluation time: in-process ``evaluate_capabilities`` vs the stock ``lm_eval`` CLI.

Both score the same model directory on the same suite, limit and seed; the script also prints the
largest score difference between them (expected 0). The in-process path pays lm-eval's import and
task index once per process ("cold"); every later trial pays only the evaluation ("warm"). The CLI
pays imports, the full stock task index and model loading on every run.

    python benchmarks/eval_inprocess_vs_cli.py --world toy           # toy suite + toy model
    python benchmarks/eval_inprocess_vs_cli.py --world toy --model-dir DIR   # any toy-world checkpoint
    python benchmarks/eval_inprocess_vs_cli.py --world tiny          # 2-layer model built in code
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _toy_world(model_dir: Path | None) -> tuple[Path, dict | str]:
    if model_dir is not None:
        return model_dir, "toy"
    from raysweep.toyworld import ensure_toy_model

    return ensure_toy_model(), "toy"


def _tiny_world(root: Path) -> tuple[Path, dict | str]:
    sys.path.insert(0, str(REPO))
    from tests.evaluation.tiny_world import build_world, tiny_suite

    world = build_world(root)
    return world.model_dir, tiny_suite(world.tasks_dir)


def _run_cli(model_dir: Path, suite, limit, seed, max_length, batch_size, threads, out: Path):
    args = [
        str(Path(sys.executable).parent / "lm_eval"), "--model", "hf",
        "--model_args", f"pretrained={model_dir},max_length={max_length}",
        "--tasks", ",".join(suite.task_names), "--seed", str(seed),
        "--batch_size", str(batch_size), "--device", "cpu", "--output_path", str(out),
    ]  # fmt: skip
    if suite.include_path:
        args += ["--include_path", suite.include_path]
    if limit is not None:
        args += ["--limit", str(limit)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result = max(out.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    return elapsed, json.loads(result.read_text())["results"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=("toy", "tiny"), default="toy")
    parser.add_argument("--model-dir", type=Path, default=None, help="toy world: model to score")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raysweep.evaluation import evaluate_capabilities, get_suite
    from raysweep.evaluation.harness import resolve_max_length

    tmp = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    model_dir, suite_spec = (
        _toy_world(args.model_dir) if args.world == "toy" else _tiny_world(tmp / "world")
    )
    suite = get_suite(suite_spec)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    max_length = resolve_max_length(model, tokenizer, None)
    kw = dict(limit=args.limit, seed=args.seed, max_length=max_length, batch_size=args.batch_size)

    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        ours = evaluate_capabilities(model, tokenizer, suite, **kw)
        times.append(time.perf_counter() - start)
    cold, warm = times[0], statistics.median(times[1:])

    cli_times, cli = [], {}
    for i in range(args.repeats):
        elapsed, cli = _run_cli(
            model_dir, suite, args.limit, args.seed, max_length, args.batch_size, args.threads,
            tmp / f"cli{i}",
        )  # fmt: skip
        cli_times.append(elapsed)
    cli_median = statistics.median(cli_times)
    diff = max(abs(ours.task_scores[t.name] - cli[t.name][t.metric_key]) for t in suite.tasks)

    print(f"world={args.world} suite={suite.name} tasks={len(suite.tasks)} limit={args.limit} "
          f"threads={args.threads} repeats={args.repeats}")  # fmt: skip
    print(f"task scores: {json.dumps(ours.task_scores)}")
    print(f"in-process per trial (warm, median): {warm:.2f} s; first call (cold): {cold:.2f} s")
    print(
        f"lm_eval CLI per trial (median):      {cli_median:.2f} s  [{', '.join(f'{t:.1f}' for t in cli_times)}]"
    )
    print(f"CLI / in-process (warm): {cli_median / warm:.1f}x; max |score difference|: {diff:.2e}")


if __name__ == "__main__":
    main()
