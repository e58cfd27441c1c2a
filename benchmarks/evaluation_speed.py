"""Seconds per ``evaluate_capabilities`` call: lm-eval's stock HFLM vs the shared-context HFLM.

Both paths score the same in-memory model on the same suite and limit in one process, alternated
(stock, shared, stock, ...), after one warm-up call that builds lm-eval's task index. The best of
``--repeats`` calls of each is compared; the shared path's first call (tokenization not yet
cached) is printed separately. The script fails if any task score differs between the paths.

    python benchmarks/evaluation_speed.py                      # toy suite, toy model, limit 400
    python benchmarks/evaluation_speed.py --repeats 5 --batch-size 16
"""

from __future__ import annotations

import json
import time

from evaluation_setup import evaluation_options, offline_model


def main() -> None:
    args = evaluation_options(__doc__, limit=400).parse_args()
    _, model, tokenizer = offline_model(args.model_dir, args.threads)

    from raysweep.evaluation import evaluate_capabilities, get_suite

    suite = get_suite(args.suite)

    def timed(shared: bool):
        start = time.perf_counter()
        scores = evaluate_capabilities(
            model,
            tokenizer,
            suite,
            limit=args.limit,
            batch_size=args.batch_size,
            shared_context=shared,
        )
        return time.perf_counter() - start, scores.task_scores

    timed(False)  # task index, datasets, lm-eval's environment report
    first_shared, reference = timed(True)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for shared in (False, True):
            elapsed, scores = timed(shared)
            times[shared].append(elapsed)
            if scores != reference:
                raise SystemExit(f"task scores differ: {scores} vs {reference}")
    stock, shared = min(times[False]), min(times[True])

    print(
        f"suite={suite.name} tasks={len(suite.tasks)} limit={args.limit} "
        f"batch_size={args.batch_size} threads={args.threads} repeats={args.repeats}"
    )
    print(f"task scores (identical on both paths): {json.dumps(reference)}")
    print(f"stock HFLM (best of {args.repeats}):          {stock:.2f} s  {_fmt(times[False])}")
    print(f"shared-context HFLM (best of {args.repeats}): {shared:.2f} s  {_fmt(times[True])}")
    print(f"shared-context first call in process:  {first_shared:.2f} s")
    print(f"stock / shared-context: {stock / shared:.2f}x")


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


if __name__ == "__main__":
    main()
