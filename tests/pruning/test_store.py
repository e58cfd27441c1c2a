"""Statistics stores: per-layer files, atomic locked builds, validation, streaming mixtures."""

from __future__ import annotations

import json
import threading
import time
import weakref

import pytest
import torch

from raysweep.atomic import file_lock
from raysweep.pruning import (
    LayerStatistics,
    MixedStatistics,
    collect_statistics,
    ensure_store,
    open_store,
    prune_model,
    stream_statistics,
)
from raysweep.pruning import store as store_module
from raysweep.pruning.store import StoreWriter, layer_file, load_store, lock_path
from tests.pruning.tiny_models import VOCAB, build, calibration
from tests.pruning.tiny_moe import build_moe
from tests.tiny import tiny_llama

torch.set_num_threads(1)

KEY = {"model": "tiny-llama", "source": "a", "kind": "hessian"}


@pytest.fixture(scope="module")
def model():
    return build("llama")


def _build_from(model, calib, method="sparsegpt"):
    def build_(sink):
        stream_statistics(model, calib, sink, method=method, batch_size=3)

    return build_


def _assert_same(a: LayerStatistics, b: LayerStatistics) -> None:
    assert a.kind == b.kind and a.groups == b.groups and a.num_tokens == b.num_tokens
    assert a.counts == pytest.approx(b.counts)
    assert set(a.sums) == set(b.sums)
    for key, value in a.sums.items():
        torch.testing.assert_close(value, b.sums[key], rtol=1e-5, atol=1e-5)


def test_store_holds_one_file_per_layer_equal_to_the_in_memory_statistics(tmp_path, model):
    calib = calibration(4, 12)
    store, built = ensure_store(tmp_path / "s", KEY, "hessian", _build_from(model, calib), 2)
    assert built and store.num_layers == 2 and store.num_tokens == 48
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "layer-00000.safetensors", "layer-00001.safetensors", "manifest.json"
    ]  # fmt: skip
    whole = collect_statistics(model, calib)
    for index in range(2):
        layer = store.layer(index)
        assert all(k.startswith(f"model.layers.{index}.") for k in layer.groups)
        part = {k: whole.sums[k] for k in layer.sums}
        _assert_same(layer, LayerStatistics("hessian", part, layer.groups, 48.0))
        diag = store.layer(index, "sqnorm")
        assert diag.kind == "sqnorm" and all(v.dim() == 1 for v in diag.sums.values())
    again, built = ensure_store(tmp_path / "s", KEY, "hessian", _fail, 2)
    assert not built and again.manifest == store.manifest


def _fail(sink):
    raise AssertionError("a valid store must not be rebuilt")


def test_mixture_of_stores_equals_the_statistics_of_the_concatenated_set(tmp_path, model):
    a, b = calibration(4, 12, seed=10), calibration(2, 12, seed=11)
    sa, _ = ensure_store(tmp_path / "a", {**KEY, "source": "a"}, "hessian", _build_from(model, a))
    sb, _ = ensure_store(tmp_path / "b", {**KEY, "source": "b"}, "hessian", _build_from(model, b))
    whole = collect_statistics(model, torch.cat([a, b]), batch_size=2)
    mixed = MixedStatistics({sa: 2 / 3, sb: 1 / 3})  # the token shares, 4:2
    assert mixed.kind == "hessian" and mixed.num_tokens == 72 and mixed.num_layers == 2
    for index in range(2):
        layer = mixed.layer(index)
        for key, value in layer.sums.items():
            torch.testing.assert_close(value, whole.sums[key], rtol=1e-5, atol=1e-4)
        diag = MixedStatistics({sa: 2, sb: 1}, kind="sqnorm").layer(index)
        for key, value in diag.sums.items():
            torch.testing.assert_close(value, torch.diagonal(whole.sums[key]), rtol=1e-5, atol=1e-4)


def test_counts_of_routed_experts_survive_files_and_mixtures(tmp_path):
    moe = build_moe("qwen3_moe")
    a, b = calibration(3, 12, seed=4), calibration(3, 12, seed=5)
    sa, _ = ensure_store(tmp_path / "a", {"s": "a"}, "sqnorm", _build_from(moe, a, "wanda"))
    sb, _ = ensure_store(tmp_path / "b", {"s": "b"}, "sqnorm", _build_from(moe, b, "wanda"))
    ma, mb = collect_statistics(moe, a, method="wanda"), collect_statistics(moe, b, method="wanda")
    assert ma.counts  # routed experts count their own tokens
    combined = LayerStatistics.combine({ma: 0.25, mb: 0.75}, num_tokens=36)
    mixed = MixedStatistics({sa: 0.25, sb: 0.75}, num_tokens=36)
    for index in range(2):
        layer = mixed.layer(index)
        assert layer.counts and set(layer.counts) <= set(combined.counts)
        assert layer.counts == pytest.approx({k: combined.counts[k] for k in layer.counts})
        for key, value in layer.sums.items():
            torch.testing.assert_close(value, combined.sums[key])


def test_a_store_being_written_elsewhere_is_waited_for_and_never_read_half_written(tmp_path):
    path = tmp_path / "s"
    layers = [
        LayerStatistics("sqnorm", {f"l{i}.q": torch.full((8,), float(i + 1))}, {f"l{i}.q": f"l{i}.q"}, 10.0)
        for i in range(3)
    ]  # fmt: skip
    locked, seen_during_write = threading.Event(), []

    def other_builder() -> None:
        with file_lock(lock_path(path)):
            locked.set()
            writer = StoreWriter(path, KEY, "sqnorm")
            for index, stats in enumerate(layers):
                writer(index, stats)
                time.sleep(0.1)
                # A reader that looks now finds no store (the layers are in a temporary folder).
                seen_during_write.append(load_store(path, KEY, "sqnorm"))
            writer.commit()

    thread = threading.Thread(target=other_builder)
    thread.start()
    assert locked.wait(5)
    store, built = ensure_store(path, KEY, "sqnorm", _fail)
    thread.join()
    assert not built and seen_during_write == [None, None, None]
    assert store.num_layers == 3
    for index, stats in enumerate(layers):
        assert torch.equal(store.layer(index).sums[f"l{index}.q"], stats.sums[f"l{index}.q"])
    assert not list(tmp_path.glob(".s.tmp-*"))


def test_a_failed_build_leaves_no_store(tmp_path, model):
    def broken(sink):
        _build_from(model, calibration(2, 8))(lambda i, s: sink(i, s) if i == 0 else 1 / 0)

    with pytest.raises(ZeroDivisionError):
        ensure_store(tmp_path / "s", KEY, "hessian", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.lock"]


def _counting(build_):
    calls = []

    def counted(sink):
        calls.append(1)
        build_(sink)

    return counted, calls


def test_truncated_or_missing_layer_file_is_rebuilt_with_a_warning(tmp_path, model):
    calib = calibration(2, 8)
    path = tmp_path / "s"
    ensure_store(path, KEY, "hessian", _build_from(model, calib))
    file = path / layer_file(1)
    file.write_bytes(file.read_bytes()[:-100])
    build_, calls = _counting(_build_from(model, calib))
    with pytest.warns(UserWarning, match="bytes, its manifest says"):
        store, built = ensure_store(path, KEY, "hessian", build_)
    assert built and calls == [1]
    _assert_same(store.layer(1), open_store(path, KEY).layer(1))
    (path / layer_file(0)).unlink()
    with pytest.warns(UserWarning, match="is missing"):
        assert ensure_store(path, KEY, "hessian", build_)[1]


def test_a_store_of_another_model_is_rebuilt_with_a_warning(tmp_path, model):
    calib = calibration(2, 8)
    other = {**KEY, "model": "another-model"}
    ensure_store(tmp_path / "s", other, "hessian", _build_from(model, calib))
    build_, calls = _counting(_build_from(model, calib))
    with pytest.warns(UserWarning, match="another key"):
        store, built = ensure_store(tmp_path / "s", KEY, "hessian", build_)
    assert built and calls == [1] and store.key == KEY
    # A layer file copied in from another store (same size) is caught by its stamp.
    ensure_store(tmp_path / "o", other, "hessian", _build_from(model, calib))
    (tmp_path / "s" / layer_file(1)).write_bytes((tmp_path / "o" / layer_file(1)).read_bytes())
    with pytest.warns(UserWarning, match="belongs to another store"):
        assert ensure_store(tmp_path / "s", KEY, "hessian", build_)[1]
    # A manifest that is not JSON, or a store of another layer count.
    (tmp_path / "s" / "manifest.json").write_text("{")
    with pytest.warns(UserWarning, match="unreadable"):
        assert ensure_store(tmp_path / "s", KEY, "hessian", build_)[1]
    with pytest.warns(UserWarning, match="the model 3"):
        assert load_store(tmp_path / "s", KEY, "hessian", num_layers=3) is None
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["key"] == KEY and manifest["num_layers"] == 2


def test_oneshot_prune_reads_one_layer_at_a_time_and_matches_in_memory_statistics(
    tmp_path, monkeypatch
):
    deep = tiny_llama(VOCAB, num_hidden_layers=4)
    calibs = [calibration(2, 12, seed=s) for s in (20, 21, 22)]
    stores = [
        ensure_store(tmp_path / f"s{i}", {**KEY, "source": i}, "hessian", _build_from(deep, c))[0]
        for i, c in enumerate(calibs)
    ]
    weights = [0.5, 0.3, 0.2]
    in_memory = LayerStatistics.combine(
        {collect_statistics(deep, c): w for c, w in zip(calibs, weights, strict=True)}
    )
    live = {"part": 0, "combined": 0}
    peaks = {"part": 0, "combined": 0, "layers": []}

    def alive(kind, obj):
        live[kind] += 1
        peaks[kind] = max(peaks[kind], live[kind])
        weakref.finalize(obj, lambda: live.__setitem__(kind, live[kind] - 1))
        return obj

    read_part = store_module.StatisticsStore.layer
    read_mix = MixedStatistics.layer

    def part(self, index, kind=None):
        assert live["combined"] == 0  # the previous layer's combination is gone
        return alive("part", read_part(self, index, kind))

    def combined(self, index):
        peaks["layers"].append(index)
        return alive("combined", read_mix(self, index))

    monkeypatch.setattr(store_module.StatisticsStore, "layer", part)
    monkeypatch.setattr(MixedStatistics, "layer", combined)
    for method, options in (("sparsegpt", {"block_size": 16}), ("wanda", {})):
        a, b = tiny_llama(VOCAB, num_hidden_layers=4), tiny_llama(VOCAB, num_hidden_layers=4)
        mixed = MixedStatistics(dict(zip(stores, weights, strict=True)))
        report = prune_model(a, None, method, 0.5, mode="oneshot", statistics=mixed, **options)
        prune_model(b, None, method, 0.5, mode="oneshot", statistics=in_memory, **options)
        assert peaks["layers"] == [0, 1, 2, 3] and report.num_tokens == 72
        assert peaks["part"] == 1 and peaks["combined"] == 1  # combined + one source at most
        assert "capture" not in report.timings and report.timings["statistics"] > 0
        for (name, x), y in zip(a.named_parameters(), b.parameters(), strict=True):
            assert torch.equal(x == 0, y == 0), name
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)
        peaks["layers"] = []


def test_provider_of_the_wrong_depth_fails_before_any_work(tmp_path, model):
    store, _ = ensure_store(
        tmp_path / "s", KEY, "sqnorm", _build_from(model, calibration(), "wanda")
    )
    deep = tiny_llama(VOCAB, num_hidden_layers=4)
    before = [p.clone() for p in deep.parameters()]
    with pytest.raises(ValueError, match="cover 2 decoder layers, the model has 4"):
        prune_model(
            deep, None, "wanda", 0.5, mode="oneshot", statistics=MixedStatistics({store: 1})
        )
    with pytest.raises(ValueError, match="Hessian"):
        prune_model(
            model, None, "sparsegpt", 0.5, mode="oneshot", statistics=MixedStatistics({store: 1})
        )
    assert all(torch.equal(a, b) for a, b in zip(before, deep.parameters(), strict=True))


def test_magnitude_oneshot_does_no_calibration_work(model):
    report = prune_model(build("llama"), None, "magnitude", 0.5, mode="oneshot")
    assert "capture" not in report.timings and "statistics" not in report.timings
    assert report.num_tokens == 0 and report.achieved_sparsity > 0.4
