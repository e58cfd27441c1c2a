"""Per-trial evaluation time: in-process ``evaluate_capabilities`` vs the stock ``lm_eval`` CLI.

Both score the same model directory on the same suite, limit and seed; the script also prints the
largest score difference between them (expected 0). The in-process path pays lm-eval's import and
task index once per process ("cold"); every later trial pays only the evaluation ("warm"). The CLI
pays imports, the full stock task index and model loading on every run.

    python benchmarks/eval_inprocess_vs_cli.py                      # toy suite + toy model
    python benchmarks/eval_inprocess_vs_cli.py --model-dir DIR      # any toy-world checkpoint
    python benchmarks/eval_inprocess_vs_cli.py --limit 50 --repeats 1   # a quick look
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evaluation_setup import evaluation_options, offline_model


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
    # Offline already: this process set HF_HUB_OFFLINE and HF_DATASETS_OFFLINE (offline_model).
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result = max(out.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    return elapsed, json.loads(result.read_text())["results"]


def main() -> None:
    parser = evaluation_options(__doc__, limit=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model_dir, model, tokenizer = offline_model(args.model_dir, args.threads)

    from raysweep.evaluation import evaluate_capabilities, get_suite
    from raysweep.evaluation.harness import resolve_max_length

    tmp = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    suite = get_suite(args.suite)
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

    print(f"model={model_dir} suite={suite.name} tasks={len(suite.tasks)} limit={args.limit} "
          f"threads={args.threads} repeats={args.repeats}")  # fmt: skip
    print(f"task scores: {json.dumps(ours.task_scores)}")
    print(f"in-process per trial (warm, median): {warm:.2f} s; first call (cold): {cold:.2f} s")
    print(
        f"lm_eval CLI per trial (median):      {cli_median:.2f} s  [{', '.join(f'{t:.1f}' for t in cli_times)}]"
    )
    print(f"CLI / in-process (warm): {cli_median / warm:.1f}x; max |score difference|: {diff:.2e}")


if __name__ == "__main__":
    main()
