"""Preflight: problems knowable before any Ray or model work, one line each."""

from __future__ import annotations

import shutil

import pytest

from raysweep.config import load_config
from raysweep.preflight import preflight
from raysweep.toyworld import ensure_toy_model

BASE = ["calibration.sources=[toy_general_prose]", "calibration.seqlen=128"]


def _problems(*overrides: str) -> list[str]:
    return preflight(load_config(None, [*BASE, *overrides]))


def test_the_embedded_default_passes():
    assert preflight(load_config(None, [])) == []


def test_missing_model_directory(tmp_path):
    (problem,) = _problems(f"model.path={tmp_path / 'nope'}")
    assert problem.startswith("model.path:") and "does not exist" in problem


def test_model_directory_without_tokenizer(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(ensure_toy_model() / "config.json", model / "config.json")
    (problem,) = _problems(f"model.path={model}")
    assert "no tokenizer files" in problem


def test_seqlen_beyond_the_model_positions():
    (problem,) = _problems("calibration.seqlen=1024")
    assert problem == (
        "calibration.seqlen: 1024 exceeds the model's max_position_embeddings (512): "
        "use at most 512"
    )


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.txt", None, "no such file or directory"),
        ("empty.txt", b"", "is empty"),
        ("blob.txt", b"\x00\x01\x02binary", "is binary"),
        ("latin.txt", "caf\xe9 cr\xe8me br\xfbl\xe9e, encore".encode("latin-1"), "is not UTF-8"),
        ("table.csv", b"a,b\n1,2\n", "unsupported file type '.csv'"),
        ("rows.jsonl", b'{"body": "hello"}\n', "have no 'text' field (fields: body)"),
    ],
)
def test_bad_local_calibration_files(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    (problem,) = _problems(f"calibration.sources=[file:{path}]")
    assert problem.startswith(f"calibration source 'file:{path}'") and expected in problem


def test_good_local_calibration_file(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text('{"text": "a document of a few words"}\n' * 200)
    assert _problems(f"calibration.sources=[file:{path}]", "calibration.n_samples=4") == []


_PROSE = "The river runs past the old mill, and the miller counts his sacks of grain. "


def _tokens(text: str) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ensure_toy_model())
    return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_a_file_source_too_small_for_its_windows(tmp_path, suffix):
    path = tmp_path / f"small{suffix}"
    rows = [_PROSE * 3] * 20
    if suffix == ".txt":
        path.write_text("".join(rows))
    else:
        path.write_text("".join(f'{{"text": "{r}", "id": {i}}}\n' for i, r in enumerate(rows)))
    actual = _tokens("".join(rows))
    # 64 windows of 128 tokens need 8192; the file holds a fraction of that.
    (problem,) = _problems(f"calibration.sources=[file:{path}]", "calibration.n_samples=64")
    assert problem.startswith(f"calibration source 'file:{path}': holds about ")
    estimate = int(problem.split("holds about ")[1].split(" tokens")[0].replace(",", ""))
    assert 0.8 * actual <= estimate <= 1.25 * actual, (estimate, actual)
    assert "but 64 windows of calibration.seqlen 128 need 8,192" in problem
    assert f"at most about {estimate // 128}" in problem
    # Enough for what the sweep draws from it: no problem.
    assert _problems(f"calibration.sources=[file:{path}]", "calibration.n_samples=4") == []


def test_a_mixed_file_source_needs_only_its_share(tmp_path):
    path = tmp_path / "share.txt"
    path.write_text(_PROSE * 26)  # about 6 windows of 128 tokens
    mix = f"calibration.mixes=[{{name: m, weights: {{'file:{path}': 0.1, toy_web: 0.9}}}}]"
    # 32 windows: 3 from the file under the mix, but 32 when it is also a point of its own.
    assert _problems(mix, "calibration.sources=[toy_web]", "calibration.n_samples=32") == []
    (problem,) = _problems(mix, f"calibration.sources=['file:{path}']", "calibration.n_samples=32")
    assert "but 32 windows" in problem


def test_unknown_task_in_an_inline_suite():
    suite = "evaluation.suite={name: mine, tasks: [{name: arc_eazy, dimension: commonsense, chance: 0.25}]}"
    (problem,) = _problems(suite)
    assert problem.startswith("evaluation.suite: unknown lm-eval task 'arc_eazy'")
    assert "arc_easy" in problem


def test_devices():
    import torch

    (problem,) = _problems("model.device=tpu")
    assert problem.startswith("model.device: 'tpu'")
    if torch.cuda.is_available():
        return
    problems = _problems("resources.gpu=1")
    assert any(p.startswith("resources.gpu: 1 per trial") for p in problems)
    assert not [
        p for p in preflight(load_config(None, [*BASE, "resources.gpu=1"]), on_cluster=True)
    ]


def test_an_ignore_pattern_that_matches_nothing():
    assert _problems("pruning.ignore=['.*mlp.*']") == []
    (problem,) = _problems("pruning.ignore=['.*linear_attn.*']")
    assert problem.startswith("pruning.ignore: ignore pattern '.*linear_attn.*' matches no ")


def test_a_model_with_a_decoder_tensor_no_method_prunes(tmp_path):
    import json

    from tests.pruning.tiny_hybrids import build

    model = build("zamba2")
    model.save_pretrained(tmp_path)
    shutil.copy(ensure_toy_model() / "tokenizer.json", tmp_path / "tokenizer.json")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "zamba2"
    (problem,) = _problems(f"model.path={tmp_path}")
    assert "cannot be pruned" in problem and "shared by several decoder layers" in problem


def test_an_nm_structure_the_model_widths_cannot_take():
    (problem,) = _problems("pruning.structures=['unstructured', '3:7']")
    assert problem.startswith("pruning.structures: '3:7' needs every pruned matrix's input width ")
    assert "e.g. model.layers.0.self_attn.q_proj, 128 inputs" in problem


def test_a_searched_nm_structure_the_model_widths_cannot_take():
    problems = _problems("search={}", "search.structures=['unstructured', '2:6']")
    assert [p[:40] for p in problems] == ["search.structures: '2:6' needs every pru"]
