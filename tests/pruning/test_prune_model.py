"""prune_model on tiny models: reference masks, untouched embeddings, modes, determinism."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from raysweep.pruning import (
    HessianNotPositiveDefinite,
    LayerStatistics,
    collect_statistics,
    default_batch_size,
    measure_sparsity,
    prune_model,
)
from tests.pruning.tiny_models import build, calibration, with_outlier_features

torch.set_num_threads(1)


def _linears(layer: nn.Module) -> dict[str, nn.Linear]:
    return {n: m for n, m in layer.named_modules() if isinstance(m, nn.Linear)}


def _wanda_reference(
    model: nn.Module, calib: torch.Tensor, sparsity: float, sequential: bool
) -> None:
    """Wanda written out plainly: hooks on a full forward pass, per-row sort, in float64."""
    layers = model.model.layers
    sqnorms: dict[tuple[int, str], torch.Tensor] = {}

    def capture(index: int) -> list:
        handles = []
        for name, module in _linears(layers[index]).items():

            def hook(m, inputs, output, key=(index, name)):
                x = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
                sqnorms[key] = (x**2).sum(0)

            handles.append(module.register_forward_hook(hook))
        return handles

    def prune(index: int) -> None:
        for name, module in _linears(layers[index]).items():
            scores = module.weight.double().abs() * sqnorms[(index, name)].sqrt()
            k = int(scores.shape[1] * sparsity)
            order = torch.sort(scores, dim=1, stable=True).indices[:, :k]
            module.weight.data.scatter_(1, order, 0.0)

    with torch.no_grad():
        if sequential:
            for index in range(len(layers)):
                handles = capture(index)
                model(calib)
                for h in handles:
                    h.remove()
                prune(index)
        else:
            handles = [h for index in range(len(layers)) for h in capture(index)]
            model(calib)
            for h in handles:
                h.remove()
            for index in range(len(layers)):
                prune(index)


@pytest.mark.parametrize("arch", ["llama", "gemma2"])
@pytest.mark.parametrize("mode", ["sequential", "oneshot"])
def test_wanda_masks_equal_an_independent_reference(arch, mode):
    calib = calibration(6, 24)  # longer than gemma2's sliding window of 8
    ours, reference = build(arch), build(arch)
    prune_model(ours, calib, "wanda", 0.5, mode=mode, batch_size=4)
    _wanda_reference(reference, calib, 0.5, sequential=mode == "sequential")
    for (name, a), b in zip(ours.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(a == 0, b == 0), name


def test_wanda_exact_row_sparsity_and_embeddings_and_head_untouched():
    model = build("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = prune_model(model, calibration(), "wanda", 0.6, batch_size=2)
    after = model.state_dict()
    for name, value in after.items():
        if ".layers." in name and name.endswith("proj.weight"):
            cols = value.shape[1]
            assert ((value == 0).sum(1) == int(cols * 0.6)).all(), name
        else:  # embeddings, lm_head, norms
            assert torch.equal(value, before[name]), name
    assert report.achieved_sparsity == pytest.approx(0.6, abs=0.01)
    assert set(report.per_module) == {
        n[: -len(".weight")] for n in after if n.endswith("proj.weight")
    }
    assert {"capture", "statistics", "prune", "propagate", "total"} <= set(report.timings)
    assert report.peak_memory_bytes["host"] > 0 and report.peak_memory_bytes["device"] == 0


def _relative_errors(dense: nn.Module, pruned: nn.Module, calib: torch.Tensor) -> float:
    """Mean over linears of ||(W - W')X|| / ||WX||, X the dense model's inputs to each linear."""
    inputs = {}
    handles = [
        m.register_forward_hook(
            lambda m, i, o, n=n: inputs.__setitem__(n, i[0].reshape(-1, i[0].shape[-1]))
        )
        for n, m in dense.named_modules()
        if isinstance(m, nn.Linear) and ".layers." in n
    ]
    with torch.no_grad():
        dense(calib)
    for h in handles:
        h.remove()
    modules = dict(pruned.named_modules())
    errors = []
    for name, x in inputs.items():
        w, w2 = dict(dense.named_modules())[name].weight.detach(), modules[name].weight.detach()
        errors.append(float(((w - w2) @ x.t()).norm() / (w @ x.t()).norm()))
    return sum(errors) / len(errors)


def test_reconstruction_error_sparsegpt_lt_wanda_lt_magnitude():
    calib = calibration(8, 32)
    dense = with_outlier_features(build("llama"))
    errors = {}
    for method in ("magnitude", "wanda", "sparsegpt"):
        model = with_outlier_features(build("llama"))
        options = {"block_size": 16} if method == "sparsegpt" else {}
        prune_model(model, calib, method, 0.5, mode="oneshot", **options)
        errors[method] = _relative_errors(dense, model, calib)
    assert errors["sparsegpt"] < errors["wanda"] < errors["magnitude"], errors


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
def test_two_four_pattern_on_a_model(method):
    model = build("llama")
    options = {"block_size": 16} if method == "sparsegpt" else {}
    report = prune_model(model, calibration(), method, 0.5, "2:4", **options)
    for name, p in model.named_parameters():
        if ".layers." in name and name.endswith("proj.weight"):
            groups = (p == 0).reshape(p.shape[0], -1, 4).sum(-1)
            assert (groups >= 2).all(), name
    assert report.achieved_sparsity == pytest.approx(0.5, abs=1e-3)


def test_oneshot_from_saved_statistics_matches_live(tmp_path):
    calib = calibration()
    live, cached = build("qwen2"), build("qwen2")
    prune_model(live, calib, "sparsegpt", 0.5, mode="oneshot", block_size=16)
    collect_statistics(cached, calib).save(tmp_path / "stats.safetensors")
    stats = LayerStatistics.load(tmp_path / "stats.safetensors")
    report = prune_model(
        cached, None, "sparsegpt", 0.5, mode="oneshot", statistics=stats, block_size=16
    )
    assert "capture" not in report.timings  # no forward pass at all
    for a, b in zip(live.parameters(), cached.parameters(), strict=True):
        assert torch.equal(a, b)
    # The same statistics serve Wanda (their diagonal).
    w_live, w_cached = build("qwen2"), build("qwen2")
    prune_model(w_live, calib, "wanda", 0.5, mode="oneshot")
    prune_model(w_cached, None, "wanda", 0.5, mode="oneshot", statistics=stats)
    for a, b in zip(w_live.parameters(), w_cached.parameters(), strict=True):
        assert torch.equal(a == 0, b == 0)


def test_failed_cholesky_names_the_modules_of_the_layer():
    model = build("llama")
    stats = collect_statistics(model, calibration())
    key = stats.groups["model.layers.1.mlp.gate_proj"]
    stats.sums[key] = -torch.eye(stats.sums[key].shape[0])
    with pytest.raises(
        HessianNotPositiveDefinite,
        match=r"Hessian of model\.layers\.1\.mlp\.gate_proj, model\.layers\.1\.mlp\.up_proj is not positive definite",
    ):
        prune_model(model, None, "sparsegpt", 0.5, mode="oneshot", statistics=stats)


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_deterministic(method):
    a, b = build("llama"), build("llama")
    prune_model(a, calibration(), method, 0.5, batch_size=4)
    prune_model(b, calibration(), method, 0.5, batch_size=4)
    for x, y in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(x, y)


def test_saved_model_has_the_reported_sparsity(tmp_path):
    model = build("llama")
    report = prune_model(model, calibration(), "sparsegpt", 0.5, block_size=16)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    measured = measure_sparsity(reloaded)
    assert measured["total"] == report.achieved_sparsity
    assert measured["per_module"] == report.per_module


def test_argument_errors():
    model = build("llama")
    with pytest.raises(ValueError, match="method must be one of"):
        prune_model(model, calibration(), "obs", 0.5)
    with pytest.raises(
        TypeError,
        match=r"wanda takes options \['min_expert_tokens', 'expert_fallback'\], got unknown \['damp'\]",
    ):
        prune_model(model, calibration(), "wanda", 0.5, damp=0.1)
    with pytest.raises(ValueError, match="calibration must be a non-empty LongTensor"):
        prune_model(model, calibration().float(), "wanda", 0.5)
    with pytest.raises(ValueError, match="needs a calibration tensor"):
        prune_model(model, None, "wanda", 0.5)


def test_import_needs_only_torch_and_transformers():
    code = (
        "import sys, raysweep.pruning\n"
        "bad = [m for m in ('pydantic', 'ray', 'datasets', 'lm_eval', 'optuna') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_batch_is_about_512_tokens_on_cpu_and_8192_on_accelerators():
    # Whole samples, at least one; measured in benchmarks/prune.py (CPU: cache-sized batches).
    assert default_batch_size(128, "cpu") == 4
    assert default_batch_size(512, "cpu") == 1
    assert default_batch_size(2048, "cpu") == 1
    assert default_batch_size(512, "cuda") == 16
    assert default_batch_size(128, torch.device("cuda", 0)) == 64
    assert default_batch_size(16384, "cuda") == 1
