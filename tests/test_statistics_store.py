"""Per-source calibration statistics: stored once per source, whatever the mix; the trial path."""

from __future__ import annotations

import json

import pytest
import torch

from raysweep.calibration import build_calibration_set
from raysweep.calibration_statistics import mix_statistics, source_store, statistics_key, store_path
from raysweep.config import EvaluationConfig, TrialConfig
from raysweep.models import load_dense
from raysweep.pruning import collect_statistics, prune_model

torch.set_num_threads(1)

SOURCES = ("toy_general_prose", "toy_math_word", "toy_code_source")
CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSWEEP_CACHE_DIR", str(tmp_path))
    return tmp_path / "statistics"


@pytest.fixture(scope="module")
def loaded():
    return load_dense(TrialConfig(mix={SOURCES[0]: 1.0}, mix_name="x").model, CPU,
                      keep_pristine=False)  # fmt: skip


def _trial(mix, method="wanda", **fields):
    fields = {"n_samples": 2, "seqlen": 16, **fields}
    return TrialConfig(mix=mix, mix_name="m", method=method, mode="oneshot", **fields)


def _manifests(cache):
    return [json.loads((d / "manifest.json").read_text()) for d in sorted(cache.iterdir())
            if d.is_dir() and not d.name.startswith(".")]  # fmt: skip


def test_ten_mixes_of_three_sources_build_three_stores_and_no_hessian(cache, loaded):
    gen = torch.Generator().manual_seed(0)
    built = []
    for _ in range(10):
        u = torch.rand(3, generator=gen) + 0.05
        trial = _trial(dict(zip(SOURCES, (u / u.sum()).tolist(), strict=True)))
        for source in SOURCES:
            built.append(source_store(trial, loaded, source, "sqnorm", {}, CPU)[1])
        provider = mix_statistics(trial, loaded, {}, CPU)
        assert provider.kind == "sqnorm" and provider.num_tokens == 32
    assert sum(built) == 3  # the first mix builds each source once; the other nine reuse them
    manifests = _manifests(cache)
    assert len(manifests) == 3 and {m["key"]["source"] for m in manifests} == set(SOURCES)
    assert all(m["kind"] == "sqnorm" and m["key"]["calibration"]["count"] == 2 for m in manifests)
    for directory in cache.iterdir():
        for file in directory.glob("layer-*.safetensors"):
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as handle:
                assert all(len(handle.get_slice(k).get_shape()) == 1 for k in handle.keys())  # noqa: SIM118


def test_mix_statistics_equal_the_concatenated_set_at_its_token_shares(cache, loaded):
    trial = _trial({s: 1.0 for s in SOURCES}, method="sparsegpt")
    provider = mix_statistics(trial, loaded, {}, CPU)
    windows = torch.cat([
        build_calibration_set(loaded.tokenizer, {s: 1.0}, 2, 16, trial.seed) for s in SOURCES
    ])  # fmt: skip
    whole = collect_statistics(loaded.model, windows)
    assert provider.kind == "hessian"
    for index in range(provider.num_layers):
        layer = provider.layer(index)
        for key, value in layer.sums.items():
            torch.testing.assert_close(value / layer.num_tokens, whole.sums[key] / whole.num_tokens,
                                       rtol=1e-5, atol=1e-6)  # fmt: skip


def test_wanda_reads_an_existing_hessian_store_and_magnitude_reads_nothing(cache, loaded):
    mix = {SOURCES[0]: 0.7, SOURCES[1]: 0.3}
    mix_statistics(_trial(mix, method="sparsegpt"), loaded, {}, CPU)
    provider = mix_statistics(_trial(mix), loaded, {}, CPU)
    assert [m["kind"] for m in _manifests(cache)] == ["hessian", "hessian"]
    assert provider.kind == "sqnorm" and all(s.kind == "hessian" for s, _ in provider.parts)
    assert mix_statistics(_trial(mix, method="magnitude"), loaded, {}, CPU) is None


def test_ria_and_an_owl_allocation_read_wanda_statistics_from_the_stores(cache, loaded):
    mix = {SOURCES[0]: 0.7, SOURCES[1]: 0.3}
    for trial in (_trial(mix, method="ria"), _trial(mix, method="magnitude", allocation="owl")):
        provider = mix_statistics(trial, loaded, {}, CPU)
        assert provider is not None and provider.kind == "sqnorm"


def test_the_store_key_follows_the_source_not_the_mix(cache, loaded):
    def path(trial, kind="sqnorm"):
        return store_path(statistics_key(trial, SOURCES[0], kind, loaded.tokenizer, {}))

    a = _trial({SOURCES[0]: 0.9, SOURCES[1]: 0.1})
    b = _trial({SOURCES[0]: 0.2, SOURCES[2]: 0.8})
    assert path(a) == path(b)
    different = [
        _trial(a.mix, n_samples=4), _trial(a.mix, seqlen=32), _trial(a.mix, seed=1),
        _trial(a.mix, model={"dtype": "bfloat16"}),
    ]  # fmt: skip
    paths = {path(t) for t in different}
    assert len(paths) == 4 and path(a) not in paths
    assert path(a, "hessian") != path(a)


def test_oneshot_trial_prunes_from_the_store(cache):
    from raysweep.dense import DenseBaseline
    from raysweep.evaluation import CapabilityScores, get_suite
    from raysweep.pipeline import run_trial

    evaluation = EvaluationConfig(suite="toy", limit=2, perplexity=False)
    trial = _trial({SOURCES[0]: 0.5, SOURCES[1]: 0.5}, method="sparsegpt", block_size=16,
                   evaluation=evaluation)  # fmt: skip
    dense = DenseBaseline(
        "test-dense", CapabilityScores({}, {d: 1.0 for d in get_suite("toy").dimensions})
    )
    record = run_trial(trial, dense)
    assert record.status == "ok" and record.achieved_sparsity > 0.45
    assert len(_manifests(cache)) == 2
    # A second trial of the same mix reads the stores the first one built.
    loaded = load_dense(trial.model, CPU, keep_pristine=False)
    provider = mix_statistics(trial, loaded, {}, CPU)
    report = prune_model(loaded.model, None, "sparsegpt", 0.5, mode="oneshot",
                         statistics=provider, block_size=16)  # fmt: skip
    assert report.achieved_sparsity == pytest.approx(record.achieved_sparsity)
    assert len(_manifests(cache)) == 2
