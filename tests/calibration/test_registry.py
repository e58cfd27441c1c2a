"""The source table (with lazily imported toy sources), user-defined sources, and the CLI."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from raysweep import worlds
from raysweep.calibration import (
    GENERATED_SOURCES,
    CalibrationSource,
    get_source,
    source_from_spec,
    source_windows,
)
from raysweep.calibration.cli import main
from raysweep.calibration.registry import SourceTable

from .conftest import TOY_LIKE


def test_world_sources_join_the_table_lazily(monkeypatch):
    loads = []

    def sources():
        loads.append(1)
        return TOY_LIKE

    fake = worlds.Registry([worlds.World(name="fake", text_sources=sources)])
    monkeypatch.setattr(worlds, "_REGISTRY", fake)
    table = SourceTable()
    assert table._rows is None and loads == []  # nothing built until the table is read
    assert list(table)[:15][0] == "c4"
    assert len(table) == 15 + len(GENERATED_SOURCES) + len(TOY_LIKE)
    toy = table["toy_math"]
    assert (toy.kind, toy.offline, toy.dimension, toy.texts) == (
        "builtin",
        True,
        "math",
        TOY_LIKE[1].texts,
    )
    assert table.world_error is None and loads == [1]


def test_a_world_that_fails_to_load_is_a_clear_error(monkeypatch):
    broken = importlib.metadata.EntryPoint("toy", "raysweep_no_such_module:world", worlds.GROUP)
    monkeypatch.setattr(worlds, "_REGISTRY", worlds.load([broken]))
    table = SourceTable()
    monkeypatch.setattr("raysweep.calibration.registry.SOURCES", table)
    assert len(table) == 15 + len(GENERATED_SOURCES)
    with pytest.raises(
        ValueError,
        match=r"^unknown calibration source 'toy_math'.*; world 'toy' "
        r"\(raysweep_no_such_module:world\) failed to load: ModuleNotFoundError",
    ):
        get_source("toy_math")


def test_source_validation():
    with pytest.raises(
        ValueError,
        match=r"dimension must be one of general, commonsense, code, math or None, got 'Math'",
    ):
        CalibrationSource(name="x", dataset="d", dimension="Math")
    with pytest.raises(ValueError, match=r"^calibration source 'x': a hub source needs dataset$"):
        CalibrationSource(name="x")
    with pytest.raises(
        ValueError, match=r"a contiguous source is read whole, so it cannot be streamed$"
    ):
        CalibrationSource(name="x", dataset="d", contiguous=True, streaming=True)


def test_spec_with_template_on_local_json(tmp_path, tokenizer, calib_cache):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(5)))
    source = source_from_spec(
        "my_qa",
        {
            "dataset": "json",
            "data_files": str(path),
            "template": "Q: {q}\nA: {a}",
            "dimension": "math",
        },
    )
    assert (source.kind, source.fields, source.dimension, source.data_files) == (
        "hub",
        ("q", "a"),
        "math",
        (str(path),),
    )
    assert source.row_text({"q": "1+1?", "a": "2"}) == "Q: 1+1?\nA: 2"
    windows = source_windows(tokenizer, source, 1, 4, 0, cache_dir=calib_cache)
    assert windows.shape == (1, 4)


def test_spec_path_with_text_field(tmp_path):
    (tmp_path / "code.jsonl").write_text(json.dumps({"content": "x = 1"}) + "\n")
    source = source_from_spec(
        "mine", {"path": str(tmp_path / "code.jsonl"), "text_field": "content", "dimension": "code"}
    )
    assert (source.kind, source.dataset, source.text_field, source.offline) == (
        "file",
        "json",
        "content",
        True,
    )


def test_spec_based_on_a_preset_keeps_its_format():
    source = source_from_spec(
        "gsm8k_local",
        {"based_on": "gsm8k", "dataset": "json", "data_files": ["/d/train.jsonl"], "config": None},
    )
    assert source.row_text({"question": "q", "answer": "a"}) == "Question: q\nAnswer: a"
    assert (source.name, source.dataset, source.config, source.dimension) == (
        "gsm8k_local",
        "json",
        None,
        "math",
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"datset": "x"},
            r"^calibration source 's': unknown key 'datset'; allowed: based_on, path, dataset",
        ),
        ({"text_field": "t"}, r"^calibration source 's': give path, dataset or based_on$"),
        (
            {"dataset": "d", "template": "x", "text_field": "t"},
            r"give either text_field or template$",
        ),
        ({"dataset": "d", "template": "plain"}, r"^template 'plain' names no row fields"),
        ({"based_on": "gsm9k"}, r"^calibration source 's': unknown based_on 'gsm9k'$"),
        ({"dataset": "d", "dimension": "maths"}, r"dimension must be one of"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        source_from_spec("s", spec)


def test_cli_list(capsys):
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "dimension", "offline", "dataset"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["c4"] == ["general", "no", "allenai/c4"]
    assert rows["math"][:3] == ["math", "no", "EleutherAI/hendrycks_math"]
    assert rows["redpajama"][2].startswith("json:hf://datasets/togethercomputer/")


def test_cli_inspect(tmp_path, tokenizer, capsys, monkeypatch):
    monkeypatch.setenv("RAYSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    tokenizer.save_pretrained(tmp_path / "tok")
    (tmp_path / "doc.txt").write_text("the river town market old bridge rain people walk " * 20)
    argv = [
        "--inspect",
        f"file:{tmp_path / 'doc.txt'}",
        "--n",
        "2",
        "--seqlen",
        "16",
        "--tokenizer",
        str(tmp_path / "tok"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"source file:{tmp_path / 'doc.txt'}: 2 windows x 16 tokens (seed 0)\n--- window 0 ---\n"
    )
    assert "--- window 1 ---" in out and "river" in out
    assert "\nngram4_aggregation: " in out and "\nunigram_entropy: " in out
    assert main(["--inspect", "gsm9k", "--tokenizer", str(tmp_path / "tok")]) == 2
    assert (
        "error: unknown calibration source 'gsm9k'; close names: gsm8k" in capsys.readouterr().err
    )
