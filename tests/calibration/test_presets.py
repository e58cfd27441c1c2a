"""Each Hub preset: its format function on one row, and its loading path on a local Hub-like folder."""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysweep.calibration import HUB_PRESETS, SOURCES, source_windows

PRESETS = {s.name: s for s in HUB_PRESETS}

MC_CHOICES = {"label": ["A", "B", "C"], "text": ["a bank", "a river", "a shop"]}

# One row per preset, shaped like the Hub dataset, and the calibration text it must give.
ROWS: dict[str, tuple[dict, str]] = {
    "c4": (
        {"text": "Beginners BBQ class.", "timestamp": "2019-04-25", "url": "https://x"},
        "Beginners BBQ class.",
    ),
    "wikitext2": ({"text": " = Valkyria Chronicles = \n"}, " = Valkyria Chronicles = \n"),
    "redpajama": ({"text": "An arXiv paper.", "meta": "{}"}, "An arXiv paper."),
    "slimpajama": (
        {"text": "Slim text.", "meta": {"redpajama_set_name": "RedPajamaC4"}},
        "Slim text.",
    ),
    "pile": ({"text": "Pile text.", "meta": {"pile_set_name": "Pile-CC"}}, "Pile text."),
    "fineweb_edu": ({"text": "Photosynthesis is.", "id": "a", "score": 3.5}, "Photosynthesis is."),
    "alpaca": (
        {"instruction": "Give a tip. ", "input": "", "output": "Sleep.", "text": "ignored"},
        "### Instruction:\nGive a tip.\n\n### Response:\nSleep.",
    ),
    "gsm8k": (
        {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
        "Question: Tom has 3 apples and buys 4. How many?\nAnswer: 3+4=7\n#### 7",
    ),
    "metamathqa": (
        {
            "query": "What is 2+2?",
            "response": "2+2=4. The answer is: 4",
            "type": "GSM_Rephrased",
            "original_question": "2+2?",
        },
        "Question: What is 2+2?\nAnswer: 2+2=4. The answer is: 4",
    ),
    "math": (
        {"problem": "Solve $x+1=2$.", "level": "Level 1", "type": "Algebra", "solution": "$x=1$."},
        "Problem:\nSolve $x+1=2$.\n\nSolution:\n$x=1$.",
    ),
    "code_alpaca": (
        {"instruction": "Reverse a list.", "input": "[1, 2]", "output": "xs[::-1]"},
        "### Instruction:\nReverse a list.\n\n### Input:\n[1, 2]\n\n### Response:\nxs[::-1]",
    ),
    "stack_python": (
        {"content": "def f():\n    return 1\n", "lang": "Python", "size": 22},
        "def f():\n    return 1\n",
    ),
    "commonsense_qa": (
        {
            "id": "q1",
            "question": "Where is money kept?",
            "question_concept": "money",
            "choices": MC_CHOICES,
            "answerKey": "A",
        },
        "Question: Where is money kept?\nChoices:\nA. a bank\nB. a river\nC. a shop\nAnswer: A. a bank",
    ),
    "winogrande": (
        {
            "sentence": "Ian helped Dennis because _ was kind.",
            "option1": "Ian",
            "option2": "Dennis",
            "answer": "1",
        },
        "Sentence: Ian helped Dennis because _ was kind.\nOptions:\n1. Ian\n2. Dennis\nAnswer: 1. Ian",
    ),
    "arc": (
        {"id": "m1", "question": "Which flows?", "choices": MC_CHOICES, "answerKey": "B"},
        "Question: Which flows?\nChoices:\nA. a bank\nB. a river\nC. a shop\nAnswer: B. a river",
    ),
}

# Where the Hub repository keeps its data, when it is not parquet under data/ or <config>/.
HUB_FILES = {
    "redpajama": "arxiv_sample.jsonl",
    "metamathqa": "MetaMathQA-395K.json",
    "code_alpaca": "code_alpaca_20k.json",
    "stack_python": "data/python/data.json",
}


def test_table_has_the_fifteen_study_presets():
    assert sorted(PRESETS) == sorted(ROWS)
    assert len(HUB_PRESETS) == 15
    assert all(name in SOURCES for name in PRESETS)
    dims = {name: s.dimension for name, s in PRESETS.items()}
    assert [n for n, d in dims.items() if d == "math"] == ["gsm8k", "metamathqa", "math"]
    assert [n for n, d in dims.items() if d == "code"] == ["code_alpaca", "stack_python"]
    assert [n for n, d in dims.items() if d == "commonsense"] == [
        "commonsense_qa",
        "winogrande",
        "arc",
    ]
    assert not any(s.offline for s in HUB_PRESETS)


def test_c4_reads_one_pinned_en_shard_without_the_stale_config():
    c4 = PRESETS["c4"]
    assert (c4.dataset, c4.config, c4.streaming) == ("allenai/c4", None, True)
    assert c4.data_files == ("en/c4-train.00000-of-01024.json.gz",)
    assert c4.revision == "607bd4c8450a42878aa9ddc051a65a055450ef87"


def test_script_based_repository_is_read_through_the_json_builder():
    rp = PRESETS["redpajama"]
    assert rp.dataset == "json"
    assert rp.data_files == ("hf://datasets/togethercomputer/RedPajama-Data-1T-Sample/*.jsonl",)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_format_function_on_one_row(name):
    row, expected = ROWS[name]
    assert PRESETS[name].row_text(row) == expected


def test_winogrande_and_multiple_choice_without_answer_omit_the_answer_line():
    row = dict(ROWS["winogrande"][0], answer="")
    assert PRESETS["winogrande"].row_text(row).splitlines()[-1] == "2. Dennis"
    row = dict(ROWS["arc"][0], answerKey="Z")
    assert PRESETS["arc"].row_text(row).splitlines()[-1] == "C. a shop"


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif name.endswith(".json.gz"):
        with gzip.open(path, "wt") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rows)
    elif name.endswith(".jsonl.zst"):
        if not importlib.util.find_spec("zstandard"):
            path.write_bytes(b"")  # never read: loading stops at the missing-package check
            return
        import zstandard

        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif name.endswith(".json"):  # one JSON array, like MetaMathQA and CodeAlpaca
        path.write_text(json.dumps(rows))
    else:
        raise AssertionError(name)


def write_hub_layout(root: Path, name: str, rows: list[dict]):
    """A local folder laid out like the preset's Hub repository; returns the preset pointed at it."""
    preset = PRESETS[name]
    configs = [c for c in preset.configs if c]
    if name in HUB_FILES:
        _write(root / HUB_FILES[name], rows)
    elif preset.data_files and not preset.data_files[0].startswith("hf://"):
        for rel in preset.data_files:
            _write(root / rel, rows)
    elif configs:
        # Hub repositories declare their configs in README metadata; datasets reads it locally too.
        lines = ["---", "configs:"]
        for config in configs:
            _write(root / config / "train-00000-of-00001.parquet", rows)
            lines += [
                f"- config_name: {config}",
                "  data_files:",
                "  - split: train",
                f"    path: {config}/train-*",
            ]
        (root / "README.md").write_text("\n".join([*lines, "---", ""]))
    else:
        _write(root / (preset.data_dir or "data") / "train-00000-of-00001.parquet", rows)
    if preset.dataset == "json":
        return replace(preset, data_files=(str(root / "*.jsonl"),))
    return replace(preset, dataset=str(root), revision=None)


@pytest.fixture
def no_stream_shutdown_sleep(monkeypatch):
    # datasets sleeps 5 s after closing a streamed parquet iterator (an Arrow thread workaround).
    import datasets

    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


@pytest.mark.parametrize("name", sorted(ROWS))
@pytest.mark.usefixtures("no_stream_shutdown_sleep")
def test_loading_path_on_a_local_hub_layout(name, tmp_path, tokenizer, calib_cache):
    row, expected = ROWS[name]
    local = write_hub_layout(tmp_path / name, name, [row] * 12)
    if (
        local.data_files
        and local.data_files[0].endswith(".zst")
        and not importlib.util.find_spec("zstandard")
    ):
        with pytest.raises(RuntimeError, match="reads .zst files: pip install zstandard"):
            source_windows(tokenizer, local, 1, 8, 0, cache_dir=calib_cache)
        return
    doc = tokenizer(expected, add_special_tokens=False)["input_ids"]
    # Running text (contiguous) has no separators between rows; documents are followed by EOS.
    period = doc if local.contiguous else [*doc, tokenizer.eos_token_id]
    windows = source_windows(tokenizer, local, 2, 3 * len(period), 0, cache_dir=calib_cache)
    assert windows.tolist() == [period * 3, period * 3]


def test_missing_text_field_names_the_fields_the_dataset_has(tmp_path, tokenizer, calib_cache):
    local = write_hub_layout(tmp_path / "c4", "c4", [ROWS["c4"][0]] * 3)
    local = replace(local, text_field="content")
    with pytest.raises(
        ValueError,
        match=r"^calibration source 'c4': dataset '.*c4' has no field 'content'; "
        r"its fields are: text, timestamp, url$",
    ):
        source_windows(tokenizer, local, 1, 8, 0, cache_dir=calib_cache)


def test_missing_format_field_is_reported_for_map_style_datasets(tmp_path, tokenizer, calib_cache):
    row = {k: v for k, v in ROWS["gsm8k"][0].items() if k != "answer"}
    # A fresh folder name: datasets caches README-configured local folders by name and config.
    local = write_hub_layout(tmp_path / "gsm8k_without_answer", "gsm8k", [row] * 3)
    with pytest.raises(ValueError, match=r"has no field 'answer'; its fields are: question$"):
        source_windows(tokenizer, local, 1, 8, 0, cache_dir=calib_cache)


def test_contiguous_source_keeps_line_order_and_adds_no_separator(tmp_path, tokenizer, calib_cache):
    lines = [{"text": f" line {i} of the old river story .\n"} for i in range(60)]
    local = write_hub_layout(tmp_path / "wikitext", "wikitext2", lines)
    stream = [t for r in lines for t in tokenizer(r["text"], add_special_tokens=False)["input_ids"]]
    windows = source_windows(tokenizer, local, 5, 16, 0, cache_dir=calib_cache)
    starts = {tuple(stream[i : i + 16]): i for i in range(0, len(stream) - 15, 16)}
    assert all(tuple(w) in starts for w in windows.tolist())
    assert len({tuple(w) for w in windows.tolist()}) == 5
    assert tokenizer.eos_token_id not in windows


@pytest.mark.usefixtures("no_stream_shutdown_sleep")
def test_streamed_configs_are_interleaved_and_read_once(tmp_path):
    from raysweep.calibration.loading import iter_documents

    local = write_hub_layout(
        tmp_path / "arc_streamed", "arc", [dict(ROWS["arc"][0], question=f"E{i}") for i in range(6)]
    )
    challenge = [dict(ROWS["arc"][0], question=f"C{i}") for i in range(3)]
    _write(tmp_path / "arc_streamed" / "ARC-Challenge" / "train-00000-of-00001.parquet", challenge)
    streamed = [d.splitlines()[0] for d in iter_documents(replace(local, streaming=True), 1)]
    in_memory = [d.splitlines()[0] for d in iter_documents(local, 1)]
    everything = sorted(
        [f"Question: E{i}" for i in range(6)] + [f"Question: C{i}" for i in range(3)]
    )
    assert sorted(streamed) == sorted(in_memory) == everything
    assert streamed == [
        d.splitlines()[0] for d in iter_documents(replace(local, streaming=True), 1)
    ]
