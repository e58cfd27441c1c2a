"""A tiny, seeded evaluation world built in code: lm-eval task YAMLs + jsonl, a BPE tokenizer and a
2-layer Llama, saved to disk so the stock lm-eval command line can load the same model and tasks."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from tests.tiny import tiny_llama

COLOURS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple"]
THINGS = ["apple", "river", "stone", "cloud", "lamp", "horse", "boat", "tree", "bell", "coin"]


def _facts(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        thing = rng.choice(THINGS)
        choices = rng.sample(COLOURS, 4)
        rows.append(
            {
                "question": f"The colour of the {thing} is",
                "choices": choices,
                "label": rng.randrange(4),
            }
        )
    return rows


def _sums(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        answer = a + b
        wrong = rng.sample([x for x in range(19) if x != answer], 3)
        choices = [str(x) for x in [answer, *wrong]]
        rng.shuffle(choices)
        rows.append(
            {
                "question": f"What is {a} plus {b}?",
                "choices": choices,
                "label": choices.index(str(answer)),
            }
        )
    return rows


def _common(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for _ in range(n):
        thing = rng.choice(THINGS)
        rows.append(
            {"question": f"Can a {thing} fly?", "choices": ["yes", "no"], "label": rng.randrange(2)}
        )
    return rows


def _code(rng: random.Random, n: int, op: str) -> list[dict]:
    rows = []
    for _ in range(n):
        x = rng.randrange(10)
        value = x + 1 if op == "+" else x * 2
        expr = "x + 1" if op == "+" else "x * 2"
        choices = [str(value), str(value + 1), str(value + 2)]
        rng.shuffle(choices)
        rows.append(
            {
                "question": f"x = {x}\nprint({expr})",
                "choices": choices,
                "label": choices.index(str(value)),
            }
        )
    return rows


_TEMPLATE = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {test}
    train: {train}
output_type: multiple_choice
test_split: test
{fewshot}doc_to_text: "{{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
{extra}metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

_GROUP = """group: rs_tiny_code
task:
  - rs_tiny_code_add
  - rs_tiny_code_mul
aggregate_metric_list:
  - metric: acc
    weight_by_size: true
metadata:
  version: 1.0
"""

# A task that only loads when HF_ALLOW_CODE_EVAL=1 is set, like lm-eval's code-execution tasks.
_EXEC_UTILS = """import os


def require_code_eval_env(dataset):
    if os.environ.get("HF_ALLOW_CODE_EVAL") != "1":
        raise RuntimeError("HF_ALLOW_CODE_EVAL is not set while loading rs_tiny_exec")
    return dataset
"""


def write_tasks(root: Path, seed: int = 0) -> Path:
    """Write the tiny tasks under ``root`` (absolute data_files paths) and return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    specs = {
        "rs_tiny_facts": (_facts, {}),
        "rs_tiny_common": (_common, {}),
        "rs_tiny_sums": (_sums, {"fewshot": "fewshot_split: train\nnum_fewshot: 2\n"}),
        "rs_tiny_code_add": (lambda r, n: _code(r, n, "+"), {}),
        "rs_tiny_code_mul": (lambda r, n: _code(r, n, "*"), {}),
        "rs_tiny_exec": (
            _facts,
            {
                "extra": "unsafe_code: true\nprocess_docs: !function exec_utils.require_code_eval_env\n"
            },
        ),
    }
    for name, (make, opts) in specs.items():
        for split, n in (("test", 40), ("train", 10)):
            path = root / f"{name}.{split}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in make(rng, n)))
        (root / f"{name}.yaml").write_text(
            _TEMPLATE.format(
                name=name,
                test=(root / f"{name}.test.jsonl").resolve(),
                train=(root / f"{name}.train.jsonl").resolve(),
                fewshot=opts.get("fewshot", ""),
                extra=opts.get("extra", ""),
            )
        )
    (root / "rs_tiny_code.yaml").write_text(_GROUP)
    (root / "exec_utils.py").write_text(_EXEC_UTILS)
    return root


def build_tokenizer(root: Path) -> PreTrainedTokenizerFast:
    texts = [p.read_text() for p in sorted(root.glob("*.jsonl"))]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def build_model(vocab_size: int, seed: int) -> LlamaForCausalLM:
    # Larger-than-default init spreads the log-likelihoods, so different seeds give different answers.
    return tiny_llama(vocab_size, seed, max_position_embeddings=256, bos_token_id=1,
                      eos_token_id=2, pad_token_id=3, initializer_range=0.5)  # fmt: skip


@dataclass
class TinyWorld:
    tasks_dir: Path
    model_dir: Path
    model: LlamaForCausalLM
    tokenizer: PreTrainedTokenizerFast


def build_world(root: Path, seed: int = 0) -> TinyWorld:
    tasks_dir = write_tasks(root / "tasks")
    tokenizer = build_tokenizer(tasks_dir)
    model = build_model(len(tokenizer), seed)
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return TinyWorld(tasks_dir.resolve(), model_dir.resolve(), model, tokenizer)


def tiny_suite(tasks_dir: Path, **overrides) -> dict:
    """The tiny suite as a user would write it in YAML: one entry per dimension."""
    suite = {
        "name": "tiny",
        "include_path": str(tasks_dir),
        "tasks": [
            {"name": "rs_tiny_facts", "dimension": "general", "metric": "acc", "chance": 0.25},
            {"name": "rs_tiny_common", "dimension": "commonsense", "metric": "acc", "chance": 0.5},
            {
                "name": "rs_tiny_sums",
                "dimension": "math",
                "metric": "acc_norm",
                "num_fewshot": None,
                "chance": 0.25,
            },
            {"name": "rs_tiny_code", "dimension": "code", "metric": "acc", "chance": 1 / 3},
        ],
    }
    suite.update(overrides)
    return suite
