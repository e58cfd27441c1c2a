"""What evaluating the study suite costs at Llama-3.1-8B, per task, per trial and for the study.

A projection, not a measurement: lm-eval's HF backend serves each task as log-likelihood
forwards (one per request, or one per document when every continuation is one token: lm-eval's
``logits_cache`` scores all one-token choices from one forward) or as greedy generation in
batches that run until the longest answer of the batch stops or reaches ``max_gen_toks``. The
task table gives, per task of the ``study`` suite, its document count, requests per document,
prompt tokens and generated tokens (Llama-3 tokenizer; counts from lm-eval 0.4.13's task files,
token lengths estimated, each marked); two device rates turn them into seconds:

- ``prefill_tps``: tokens per second of a batched forward (log-likelihood and generation prompts);
- ``decode_step_s``: seconds per generation step of a batch (HF ``generate`` with a KV cache).

Without ``--measured`` the rates are assumptions for one H100 SXM in bf16 with the HF backend
(stated in ``ASSUMED``); ``--measured gpu_check.json`` takes the rates ``benchmarks/gpu_check.py``
measured on the device (its ``evaluation`` part runs both workloads at 8B shape). Generation is
projected twice: answers as long as a dense model's, and as long as ``max_gen_toks`` allows
(pruned models generate longer as sparsity rises; a batch runs as long as its longest answer).

    python benchmarks/eval_projection.py                      # assumed H100 rates
    python benchmarks/eval_projection.py --measured $OUT/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Task:
    name: str
    dimension: str
    docs: int  # test documents (lm-eval 0.4.13 task files; usual sizes)
    forwards_per_doc: int  # 1 when every continuation is one token (logits_cache)
    prompt_tokens: int  # per forward or per generation prompt, few-shot included (estimated)
    generated: int = 0  # mean tokens of the batch's longest answer, dense model (estimated)
    max_gen_toks: int = 0  # 0: a log-likelihood task


# fmt: off
STUDY = (
    Task("mmlu", "general", 14_042, 1, 600),                  # 5-shot, " A".." D": one forward
    Task("boolq", "commonsense", 3_270, 1, 150),              # " yes" / " no"
    Task("rte", "commonsense", 277, 1, 80),                   # " True" / " False"
    Task("hellaswag", "commonsense", 10_042, 4, 100),         # four multi-token endings
    Task("winogrande", "commonsense", 1_267, 2, 30),          # two contexts, shared continuation
    Task("arc_easy", "commonsense", 2_376, 4, 40),
    Task("arc_challenge", "commonsense", 1_172, 4, 45),
    Task("openbookqa", "commonsense", 500, 4, 30),
    Task("piqa", "commonsense", 1_838, 2, 50),
    Task("gsm8k", "math", 1_319, 1, 900, generated=200, max_gen_toks=256),   # 5-shot
    Task("humaneval", "code", 164, 1, 150, generated=300, max_gen_toks=1024),
    Task("mbpp", "code", 500, 1, 600, generated=256, max_gen_toks=256),      # rarely says [DONE]
)
# fmt: on

# One H100 SXM, bf16, lm-eval HF backend, batch 16 (configs/study.yaml): 2 x 8.0e9 FLOP per
# prefill token at about 35 % of the 989 TFLOP/s dense peak; a decode step of a 16-sequence batch
# is bound by reading 16 GB of weights (5 ms at 3.35 TB/s) plus HF generate's per-step Python and
# kernel-launch overhead for 32 layers (about 25 ms): about 30 ms.
ASSUMED = {"prefill_tps": 21_600.0, "decode_step_s": 0.030, "batch_size": 16,
           "source": "assumed: one H100 SXM, bf16, HF backend"}  # fmt: skip
# configs/study.yaml's grid: 15 sources + the uniform mix, 5 sparsities, 2 methods; plus dense.
STUDY_TRIALS = 16 * 5 * 2


def rates(measured: Path | None) -> dict:
    if measured is None:
        return dict(ASSUMED)
    data = json.loads(measured.read_text())
    evaluation = data.get("evaluation")
    if not evaluation:
        raise SystemExit(f"{measured} has no evaluation part (run benchmarks/gpu_check.sh)")
    return {"prefill_tps": evaluation["loglik"]["tokens_per_s"],
            "decode_step_s": evaluation["generation"]["step_s"],
            "batch_size": evaluation["generation"]["batch_size"],
            "source": f"measured: {data.get('device_name')} ({measured})"}  # fmt: skip


def task_seconds(task: Task, rate: dict, longest: bool) -> dict:
    """Seconds of one task: forwards, and generation steps when it generates."""
    batch = rate["batch_size"]
    prefill = task.docs * task.forwards_per_doc * task.prompt_tokens / rate["prefill_tps"]
    steps = 0
    if task.max_gen_toks:
        per_batch = task.max_gen_toks if longest else min(task.generated, task.max_gen_toks)
        steps = math.ceil(task.docs / batch) * per_batch
    decode = steps * rate["decode_step_s"]
    return {"task": task.name, "dimension": task.dimension, "prefill_s": prefill,
            "decode_s": decode, "total_s": prefill + decode, "steps": steps}  # fmt: skip


def project(rate: dict, trials: int = STUDY_TRIALS) -> dict:
    scenarios = {}
    for longest in (False, True):
        rows = [task_seconds(t, rate, longest) for t in STUDY]
        trial = sum(r["total_s"] for r in rows)
        generation = sum(r["decode_s"] for r in rows) + sum(
            r["prefill_s"] for r, t in zip(rows, STUDY, strict=True) if t.max_gen_toks
        )
        scenarios["longest" if longest else "dense"] = {
            "tasks": rows, "trial_s": trial, "generation_share": generation / trial,
            "study_h": trial * (trials + 1) / 3600}  # fmt: skip
    return {"rates": rate, "trials": trials, "scenarios": scenarios}


def markdown(result: dict) -> str:
    dense, longest = result["scenarios"]["dense"], result["scenarios"]["longest"]
    lines = [f"Rates ({result['rates']['source']}): prefill {result['rates']['prefill_tps']:,.0f} "
             f"tokens/s, {result['rates']['decode_step_s'] * 1000:.0f} ms per decode step of "
             f"{result['rates']['batch_size']} sequences.", "",
             "| task | dimension | min (dense-length answers) | min (answers to max_gen_toks) |",
             "|---|---|---|---|"]  # fmt: skip
    for a, b in zip(dense["tasks"], longest["tasks"], strict=True):
        lines.append(f"| {a['task']} | {a['dimension']} | {a['total_s'] / 60:.1f} | "
                     f"{b['total_s'] / 60:.1f} |")  # fmt: skip
    lines += [f"| **one trial** | | **{dense['trial_s'] / 60:.0f}** "
              f"(generation {dense['generation_share']:.0%}) | **{longest['trial_s'] / 60:.0f}** "
              f"(generation {longest['generation_share']:.0%}) |",
              f"| **study** ({result['trials']} trials + dense, one GPU) | | "
              f"**{dense['study_h']:.0f} h** | **{longest['study_h']:.0f} h** |"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measured", type=Path, help="gpu_check.json with an evaluation part")
    parser.add_argument("--trials", type=int, default=STUDY_TRIALS,
                        help="trials of the study (default: configs/study.yaml's grid)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the projection here")
    args = parser.parse_args(argv)
    result = project(rates(args.measured), args.trials)
    print(markdown(result), end="")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
