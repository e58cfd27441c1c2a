"""Calibration sets: shape, no padding, determinism, per-source independence, bad input."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from raysweep.calibration import CalibrationSource, build_calibration_set, source_windows

from .conftest import build_tokenizer

MIX = {"toy_general": 0.5, "toy_math": 0.3, "toy_code": 0.2}


def test_shape_dtype_and_no_padding(tokenizer, toy_sources, calib_cache):
    calib = build_calibration_set(
        tokenizer, MIX, 20, 48, seed=0, extra_sources=toy_sources, cache_dir=calib_cache
    )
    assert calib.shape == (20, 48)
    assert calib.dtype == torch.long
    assert not (calib == tokenizer.pad_token_id).any()
    assert (calib == tokenizer.eos_token_id).any()  # documents are joined with EOS


def test_windows_are_the_eos_joined_document_stream(tokenizer, toy_sources, calib_cache):
    source = toy_sources["toy_math"]
    from raysweep.calibration import source_seed

    docs = source.texts(source_seed(7, "toy_math"))
    stream: list[int] = []
    while len(stream) < 3 * 32:
        stream += tokenizer(next(docs), add_special_tokens=False)["input_ids"]
        stream.append(tokenizer.eos_token_id)
    windows = source_windows(tokenizer, source, 3, 32, 7, cache_dir=calib_cache)
    assert windows.tolist() == [stream[0:32], stream[32:64], stream[64:96]]


def test_deterministic_in_seed(tokenizer, toy_sources, tmp_path):
    def build(seed, cache):
        return build_calibration_set(
            tokenizer, MIX, 10, 32, seed, extra_sources=toy_sources, cache_dir=tmp_path / cache
        )

    assert torch.equal(build(3, "one"), build(3, "two"))  # separate caches: rebuilt, same result
    assert not torch.equal(build(3, "one"), build(4, "one"))


def test_source_gives_the_same_windows_alone_or_mixed(tokenizer, toy_sources, calib_cache):
    alone = source_windows(
        tokenizer, "toy_math", 4, 32, 5, extra_sources=toy_sources, cache_dir=calib_cache
    )
    # allocate_counts gives toy_math 4 of 8 and 4 of 12 here; rows are grouped by source name.
    with_code = build_calibration_set(
        tokenizer,
        {"toy_code": 1, "toy_math": 1},
        8,
        32,
        5,
        extra_sources=toy_sources,
        cache_dir=calib_cache / "a",
    )
    with_two = build_calibration_set(
        tokenizer,
        {"toy_general": 2, "toy_math": 1, "toy_code": 1},
        16,
        32,
        5,
        extra_sources=toy_sources,
        cache_dir=calib_cache / "b",
    )
    assert torch.equal(with_code[4:8], alone)
    assert torch.equal(with_two[12:16], alone)
    assert torch.equal(with_two[0:4], with_code[0:4])  # toy_code's rows, again unchanged


def test_string_shorthand_is_a_single_source(tokenizer, toy_sources, calib_cache):
    one = build_calibration_set(
        tokenizer, "toy_code", 3, 16, 1, extra_sources=toy_sources, cache_dir=calib_cache
    )
    assert torch.equal(
        one,
        build_calibration_set(
            tokenizer, {"toy_code": 1.0}, 3, 16, 1, extra_sources=toy_sources, cache_dir=calib_cache
        ),
    )


def test_too_small_source_says_how_many_windows_it_gives(tokenizer, toy_sources, calib_cache):
    docs = list(toy_sources["toy_tiny"].texts(0))
    assert len(docs) == 20
    with pytest.raises(
        ValueError,
        match=r"^calibration source 'toy_tiny' is too small: it gives \d+ windows of 64 tokens, "
        r"500 were requested$",
    ):
        source_windows(
            tokenizer, "toy_tiny", 500, 64, 0, extra_sources=toy_sources, cache_dir=calib_cache
        )


def test_too_small_count_is_exact(tokenizer, calib_cache):
    docs = ["river town", "old bridge rain", "the city"]
    source = CalibrationSource(name="three", kind="builtin", texts=lambda seed: iter(docs))
    total = sum(len(tokenizer(d, add_special_tokens=False)["input_ids"]) + 1 for d in docs)
    with pytest.raises(ValueError, match=rf"it gives {total // 2} windows of 2 tokens, 100 were"):
        source_windows(tokenizer, source, 100, 2, 0, cache_dir=calib_cache)


def _exploding_texts(seed):
    raise AssertionError("data was read before the input was validated")


def test_tokenizer_without_eos_fails_before_reading_data(calib_cache):
    source = CalibrationSource(name="never", kind="builtin", texts=_exploding_texts)
    with pytest.raises(
        ValueError,
        match=r"^tokenizer TokenizersBackend has no EOS token \(eos_token_id is None\); "
        r"calibration windows separate documents with EOS, so set tokenizer.eos_token$",
    ):
        build_calibration_set(
            build_tokenizer(eos=False),
            "never",
            4,
            8,
            0,
            extra_sources={"never": source},
            cache_dir=calib_cache,
        )


def test_unknown_source_lists_close_names(tokenizer, calib_cache):
    with pytest.raises(
        ValueError,
        match=r"^unknown calibration source 'gsm8'; close names: gsm8k \(python -m raysweep.calibration "
        r"--list shows them all; local data: file:<path>\)$",
    ):
        build_calibration_set(tokenizer, {"c4": 1, "gsm8": 1}, 4, 8, 0, cache_dir=calib_cache)


def test_unknown_source_with_no_close_name(tokenizer):
    with pytest.raises(ValueError, match=r"^unknown calibration source 'zzzzzz' \(python -m"):
        build_calibration_set(tokenizer, "zzzzzz", 4, 8, 0)


@pytest.mark.parametrize(("n", "seqlen"), [(0, 8), (4, 0), (4, -2)])
def test_bad_sizes(tokenizer, toy_sources, n, seqlen):
    with pytest.raises(ValueError, match=r"must be a positive integer, got"):
        build_calibration_set(tokenizer, "toy_code", n, seqlen, 0, extra_sources=toy_sources)


def test_generated_source_needs_the_model(tokenizer, calib_cache):
    gen = CalibrationSource(name="self_cal", kind="generated", text_field=None)
    with pytest.raises(
        ValueError,
        match=r"^calibration source 'self_cal' is generated by the model being pruned; "
        r"pass model= to build it$",
    ):
        build_calibration_set(tokenizer, "self_cal", 4, 8, 0, extra_sources={"self_cal": gen})
    with pytest.raises(NotImplementedError, match="of kind 'generated' but has no generator"):
        build_calibration_set(
            tokenizer, "self_cal", 4, 8, 0, model=object(), extra_sources={"self_cal": gen}
        )


def test_generated_source_hook_calls_its_generator(tokenizer, toy_sources, calib_cache):
    calls = []

    def generator(*, model, tokenizer, count, seqlen, seed):
        calls.append((model, count, seqlen, seed))
        return torch.full((count, seqlen), 7)

    gen = CalibrationSource(name="self_cal", kind="generated", text_field=None, generator=generator)
    sources = {**toy_sources, "self_cal": gen}
    calib = build_calibration_set(
        tokenizer,
        {"self_cal": 1, "toy_code": 1},
        6,
        8,
        2,
        model="M",
        extra_sources=sources,
        cache_dir=calib_cache,
    )
    assert calls == [("M", 3, 8, 2)]
    assert calib.shape == (6, 8)
    assert (calib[:3] == 7).all() and not (calib[3:] == 7).all()  # sources in name order


def test_file_sources_txt_jsonl_parquet(tmp_path, tokenizer, calib_cache):
    texts = ["the river town market.", "old bridge rain people.", "walk morning story city."]
    (tmp_path / "txt").mkdir()
    for i, t in enumerate(texts):
        (tmp_path / "txt" / f"{i}.txt").write_text(t)
    (tmp_path / "docs.jsonl").write_text(
        "".join(json.dumps({"text": t, "n": 1}) + "\n" for t in texts)
    )
    pq.write_table(pa.table({"text": texts}), tmp_path / "docs.parquet")
    period = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
    results = []
    for name in ("txt", "docs.jsonl", "docs.parquet"):
        windows = source_windows(
            tokenizer, f"file:{tmp_path / name}", 1, period, 0, cache_dir=calib_cache
        )
        results.append(sorted(tokenizer.decode(windows[0]).split("<eos>")))
    # One window holds each document once, whatever order the seed chose.
    assert results == [sorted(["", *texts])] * 3


def test_file_source_without_the_text_field(tmp_path, tokenizer, calib_cache):
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": "a", "answer": "b"}) + "\n")
    with pytest.raises(
        ValueError,
        match=r"^calibration source 'file:.*q.jsonl': dataset 'json' has no field 'text'; "
        r"its fields are: question, answer$",
    ):
        source_windows(tokenizer, f"file:{tmp_path / 'q.jsonl'}", 1, 4, 0, cache_dir=calib_cache)


def test_file_source_errors(tmp_path):
    from raysweep.calibration import get_source

    with pytest.raises(ValueError, match=r"no such file or directory: '.*missing.jsonl'$"):
        get_source(f"file:{tmp_path / 'missing.jsonl'}")
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.jsonl").write_text("{}")
    with pytest.raises(ValueError, match=r"mixed file types .jsonl, .txt under"):
        get_source(f"file:{tmp_path}")


def test_toy_world_sources_from_the_table(tokenizer, calib_cache):
    toy = pytest.importorskip("raysweep.toyworld.sources")
    from raysweep.calibration import SOURCES

    names = sorted(t.name for t in toy.TOY_SOURCES)[:2]
    assert all(SOURCES[n].offline and SOURCES[n].kind == "builtin" for n in names)
    calib = build_calibration_set(
        tokenizer, dict.fromkeys(names, 1.0), 6, 32, 0, cache_dir=calib_cache
    )
    assert calib.shape == (6, 32)
    alone = source_windows(tokenizer, names[1], 3, 32, 0, cache_dir=calib_cache / "alone")
    assert torch.equal(calib[3:], alone)
