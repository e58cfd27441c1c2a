"""The study's Hugging Face Hub calibration sources and their row-to-text format functions.

Ids, configs and loading workarounds follow the checked fact table of the project (datasets 5.x:
repositories that still hold a loading script are read through the ``json`` builder on ``hf://``
paths; C4 is read from one pinned ``en`` shard without the stale ``allenai--c4`` config).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .sources import CalibrationSource

Row = Mapping[str, Any]

# Commit of allenai/c4 pinned by the reference calibration loaders (abx393 lib/data.py).
C4_REVISION = "607bd4c8450a42878aa9ddc051a65a055450ef87"

MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


def format_instruction(row: Row) -> str:
    """Alpaca-style instruction data: instruction, optional input, response."""
    parts = [f"### Instruction:\n{row['instruction'].strip()}"]
    if (row.get("input") or "").strip():
        parts.append(f"### Input:\n{row['input'].strip()}")
    parts.append(f"### Response:\n{row['output'].strip()}")
    return "\n\n".join(parts)


def format_gsm8k(row: Row) -> str:
    """GSM8K question and worked answer (the rationale keeps its final ``#### <number>`` line)."""
    return f"Question: {row['question'].strip()}\nAnswer: {row['answer'].strip()}"


def format_metamathqa(row: Row) -> str:
    """MetaMathQA augmented question and its step-by-step response."""
    return f"Question: {row['query'].strip()}\nAnswer: {row['response'].strip()}"


def format_math(row: Row) -> str:
    """Competition MATH problem and its LaTeX solution."""
    return f"Problem:\n{row['problem'].strip()}\n\nSolution:\n{row['solution'].strip()}"


def _lettered_choices(labels: Sequence[str], texts: Sequence[str]) -> list[str]:
    return [f"{label}. {text}" for label, text in zip(labels, texts, strict=True)]


def _multiple_choice(question: str, choices: Row, answer_key: str) -> str:
    labels, texts = list(choices["label"]), list(choices["text"])
    lines = [f"Question: {question.strip()}", "Choices:", *_lettered_choices(labels, texts)]
    if answer_key in labels:
        lines.append(f"Answer: {answer_key}. {texts[labels.index(answer_key)]}")
    return "\n".join(lines)


def format_commonsense_qa(row: Row) -> str:
    """CommonsenseQA question, lettered choices and the correct choice."""
    return _multiple_choice(row["question"], row["choices"], row["answerKey"])


def format_arc(row: Row) -> str:
    """ARC question, labelled choices and the correct choice."""
    return _multiple_choice(row["question"], row["choices"], row["answerKey"])


def format_winogrande(row: Row) -> str:
    """WinoGrande sentence with its two options and the option that fills the blank."""
    options = [row["option1"], row["option2"]]
    lines = [
        f"Sentence: {row['sentence'].strip()}",
        "Options:",
        f"1. {options[0]}",
        f"2. {options[1]}",
    ]
    answer = str(row.get("answer") or "")
    if answer in ("1", "2"):
        lines.append(f"Answer: {answer}. {options[int(answer) - 1]}")
    return "\n".join(lines)


HUB_PRESETS: tuple[CalibrationSource, ...] = (
    CalibrationSource(
        name="c4",
        dataset="allenai/c4",
        data_files=("en/c4-train.00000-of-01024.json.gz",),
        revision=C4_REVISION,
        streaming=True,
        dimension="general",
        description="C4 English web text, first train shard only (the pruning literature's default)",
    ),
    CalibrationSource(
        name="wikitext2",
        dataset="Salesforce/wikitext",
        config="wikitext-2-raw-v1",
        contiguous=True,
        dimension="general",
        description="WikiText-2 raw train split as running text (Wikipedia good/featured articles)",
    ),
    CalibrationSource(
        name="redpajama",
        dataset="json",
        data_files=("hf://datasets/togethercomputer/RedPajama-Data-1T-Sample/*.jsonl",),
        streaming=True,
        dimension="general",
        description=(
            "RedPajama-1T sample (web, books, arXiv, code, Wikipedia, StackExchange); "
            "read as json because the repository holds a loading script"
        ),
    ),
    CalibrationSource(
        name="slimpajama",
        dataset="DKYoon/SlimPajama-6B",
        streaming=True,
        dimension="general",
        description="SlimPajama (deduplicated RedPajama), the 6B-token parquet mirror, streamed",
    ),
    CalibrationSource(
        name="pile",
        dataset="monology/pile-uncopyrighted",
        data_files=("train/00.jsonl.zst",),
        streaming=True,
        dimension="general",
        description="The Pile without copyrighted subsets, first train shard (needs zstandard)",
    ),
    CalibrationSource(
        name="fineweb_edu",
        dataset="HuggingFaceFW/fineweb-edu",
        config="sample-10BT",
        streaming=True,
        dimension="general",
        description="FineWeb-Edu educational web pages, 10B-token sample, streamed",
    ),
    CalibrationSource(
        name="alpaca",
        dataset="tatsu-lab/alpaca",
        format=format_instruction,
        fields=("instruction", "input", "output"),
        dimension="general",
        description="Stanford Alpaca instruction-following demonstrations",
    ),
    CalibrationSource(
        name="gsm8k",
        dataset="openai/gsm8k",
        config="main",
        format=format_gsm8k,
        fields=("question", "answer"),
        dimension="math",
        description="GSM8K grade-school word problems with worked answers",
    ),
    CalibrationSource(
        name="metamathqa",
        dataset="meta-math/MetaMathQA",
        format=format_metamathqa,
        fields=("query", "response"),
        dimension="math",
        description="MetaMathQA augmented GSM8K/MATH questions with step-by-step answers",
    ),
    CalibrationSource(
        name="math",
        dataset="EleutherAI/hendrycks_math",
        config=MATH_SUBJECTS,
        format=format_math,
        fields=("problem", "solution"),
        dimension="math",
        description="Competition MATH problems and solutions, all seven subjects",
    ),
    CalibrationSource(
        name="code_alpaca",
        dataset="sahil2801/CodeAlpaca-20k",
        format=format_instruction,
        fields=("instruction", "input", "output"),
        dimension="code",
        description="Code Alpaca 20k programming instructions with solutions",
    ),
    CalibrationSource(
        name="stack_python",
        dataset="bigcode/the-stack-smol",
        data_dir="data/python",
        text_field="content",
        dimension="code",
        description="Python files from The Stack (smol); gated: accept the terms and set HF_TOKEN",
    ),
    CalibrationSource(
        name="commonsense_qa",
        dataset="tau/commonsense_qa",
        format=format_commonsense_qa,
        fields=("question", "choices", "answerKey"),
        dimension="commonsense",
        description="CommonsenseQA five-way questions with the correct answer",
    ),
    CalibrationSource(
        name="winogrande",
        dataset="allenai/winogrande",
        config="winogrande_xl",
        format=format_winogrande,
        fields=("sentence", "option1", "option2", "answer"),
        dimension="commonsense",
        description="WinoGrande pronoun-resolution sentences with the correct option",
    ),
    CalibrationSource(
        name="arc",
        dataset="allenai/ai2_arc",
        config=("ARC-Easy", "ARC-Challenge"),
        format=format_arc,
        fields=("question", "choices", "answerKey"),
        dimension="commonsense",
        description="AI2 ARC grade-school science questions (Easy and Challenge) with answers",
    ),
)
