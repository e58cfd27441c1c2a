"""Disk cache: hits are identical and read no data; keys separate what differs; writes are atomic."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import torch

from raysweep.calibration import CalibrationSource, source_windows
from raysweep.calibration.cache import cache_key

from .conftest import build_tokenizer, word_texts


class CountingTexts:
    """texts(seed) that counts how often the source is read."""

    def __init__(self) -> None:
        self.calls = 0
        self._texts = word_texts("code")
        self.lock = threading.Lock()

    def __call__(self, seed: int):
        with self.lock:
            self.calls += 1
        return self._texts(seed)


@pytest.fixture
def counting():
    texts = CountingTexts()
    return texts, CalibrationSource(name="counted", kind="builtin", texts=texts)


def test_cache_hit_is_identical_and_does_not_reload(tokenizer, counting, calib_cache):
    texts, source = counting
    first = source_windows(tokenizer, source, 6, 32, 3, cache_dir=calib_cache)
    second = source_windows(tokenizer, source, 6, 32, 3, cache_dir=calib_cache)
    assert texts.calls == 1
    assert torch.equal(first, second) and second.dtype == torch.long
    files = sorted(p.name for p in calib_cache.rglob("*") if p.is_file())
    key = cache_key(tokenizer, source, 32, 3, 6)
    assert files == [f"{key}.lock", f"{key}.pt"]  # no temporary file left behind


def test_each_key_part_makes_a_new_entry(tokenizer, counting, calib_cache):
    texts, source = counting
    source_windows(tokenizer, source, 6, 32, 3, cache_dir=calib_cache)
    source_windows(tokenizer, source, 6, 16, 3, cache_dir=calib_cache)
    source_windows(tokenizer, source, 6, 32, 4, cache_dir=calib_cache)
    source_windows(tokenizer, source, 5, 32, 3, cache_dir=calib_cache)
    assert texts.calls == 4
    other_tok = build_tokenizer()
    other_tok.add_tokens(["zebra"])
    assert cache_key(other_tok, source, 32, 3, 6) != cache_key(tokenizer, source, 32, 3, 6)
    pinned = replace(source, revision="abc")
    assert cache_key(tokenizer, pinned, 32, 3, 6) != cache_key(tokenizer, source, 32, 3, 6)


def test_file_edit_invalidates(tmp_path, tokenizer, calib_cache):
    path = tmp_path / "a.txt"
    path.write_text("the river town market old bridge")
    name = f"file:{path}"
    before = source_windows(tokenizer, name, 1, 4, 0, cache_dir=calib_cache)
    path.write_text("def return if else for while print list")
    after = source_windows(tokenizer, name, 1, 4, 0, cache_dir=calib_cache)
    assert not torch.equal(before, after)


def test_corrupt_entry_is_rebuilt(tokenizer, counting, calib_cache):
    texts, source = counting
    first = source_windows(tokenizer, source, 2, 8, 0, cache_dir=calib_cache)
    next(calib_cache.rglob("*.pt")).write_bytes(b"not a tensor")
    assert torch.equal(source_windows(tokenizer, source, 2, 8, 0, cache_dir=calib_cache), first)
    assert texts.calls == 2


def test_concurrent_builders_build_once(tokenizer, counting, calib_cache):
    texts, source = counting
    results = [None] * 4

    def work(i):
        results[i] = source_windows(tokenizer, source, 8, 64, 1, cache_dir=calib_cache)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert texts.calls == 1
    assert all(torch.equal(r, results[0]) for r in results)


def test_default_cache_root_is_the_node_cache(tokenizer, counting, monkeypatch, tmp_path):
    monkeypatch.setenv("RAYSWEEP_CACHE_DIR", str(tmp_path / "node"))
    _, source = counting
    source_windows(tokenizer, source, 2, 8, 0)
    assert len(list((tmp_path / "node" / "calibration").rglob("*.pt"))) == 1
