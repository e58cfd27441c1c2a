"""Seconds per ``evaluate_capabilities`` call: lm-eval's stock HFLM vs the shared-context HFLM.

Both paths score the same in-memory model on the same suite and limit in one process, alternated
(stock, shared, stock, ...), after one warm-up call that builds lm-eval's task index. The best of
``--repeats`` calls of each is compared; the shared path's first call (tokenization not yet
cached) is printed separately. The script fails if any task score differs between the paths.

    python benchmarks/evaluation_speed.py                      # toy suite, toy model, limit 400
    python benchmarks/evaluation_speed.py --repeats 5 --batch-size 16
    python benchmarks/evaluation_speed.py --items              # per-item values: cost of keeping them

With ``--items`` the comparison is instead the shared-context path without and with
``items=True`` (lm-eval logs its samples; each task's per-item values are kept), alternated the
same way; the script fails if a task score differs or an item list does not average to its score.
"""

from __future__ import annotations

import argparse
import json
import time

from evaluation_setup import evaluation_options, offline_model


def main() -> None:
    parser = evaluation_options(__doc__, limit=400)
    parser.add_argument("--items", action="store_true", help="time items=False vs items=True")
    args = parser.parse_args()
    _, model, tokenizer = offline_model(args.model_dir, args.threads)

    from raysweep.evaluation import evaluate_capabilities, get_suite

    suite = get_suite(args.suite)

    def timed(shared: bool, items: bool = False):
        start = time.perf_counter()
        scores = evaluate_capabilities(
            model,
            tokenizer,
            suite,
            limit=args.limit,
            batch_size=args.batch_size,
            shared_context=shared,
            items=items,
        )
        return time.perf_counter() - start, scores

    if args.items:
        _items(args, suite, timed)
        return
    timed(False)  # task index, datasets, lm-eval's environment report
    first_shared, reference = timed(True)
    reference = reference.task_scores
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for shared in (False, True):
            elapsed, scores = timed(shared)
            scores = scores.task_scores
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


def _items(args: argparse.Namespace, suite, timed) -> None:  # noqa: ANN001
    """Shared-context evaluation without and with per-item values, alternated; best of each."""
    timed(True)  # task index, datasets, tokenization, lm-eval's environment report
    times: dict[bool, list[float]] = {False: [], True: []}
    reference = None
    for _ in range(args.repeats):
        for items in (False, True):
            elapsed, scores = timed(True, items)
            times[items].append(elapsed)
            reference = reference or scores.task_scores
            if scores.task_scores != reference:
                raise SystemExit(f"task scores differ: {scores.task_scores} vs {reference}")
            for task, kept in (scores.items or {}).items():
                if abs(kept.mean() - scores.task_scores[task]) > 1e-9:
                    raise SystemExit(f"{task}: items average {kept.mean()}, not its score")
            if items and set(scores.items or {}) != set(suite.task_names):
                raise SystemExit(f"items missing for {set(suite.task_names) - set(scores.items)}")
    plain, kept = min(times[False]), min(times[True])
    n_items = sum(len(v.values) for v in scores.items.values())
    print(f"suite={suite.name} tasks={len(suite.tasks)} limit={args.limit} items={n_items} "
          f"batch_size={args.batch_size} threads={args.threads} repeats={args.repeats}")  # fmt: skip
    print(f"items=False (best of {args.repeats}): {plain:.2f} s  {_fmt(times[False])}")
    print(f"items=True  (best of {args.repeats}): {kept:.2f} s  {_fmt(times[True])}")
    print(f"items=True / items=False: {kept / plain:.3f}x")


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


if __name__ == "__main__":
    main()
