"""LayerStatistics: collection, additivity, combine, safetensors round trip."""

from __future__ import annotations

import pytest
import torch

from raysweep.pruning import LayerStatistics, collect_statistics
from tests.pruning.tiny_models import build, calibration

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model():
    return build("llama")


def test_collect_groups_modules_that_share_an_input(model):
    stats = collect_statistics(model, calibration(4, 12), batch_size=3)
    assert stats.kind == "hessian" and stats.num_tokens == 48
    layer = "model.layers.1"
    assert stats.groups[f"{layer}.self_attn.k_proj"] == f"{layer}.self_attn.q_proj"
    assert stats.groups[f"{layer}.self_attn.v_proj"] == f"{layer}.self_attn.q_proj"
    assert stats.groups[f"{layer}.mlp.up_proj"] == f"{layer}.mlp.gate_proj"
    assert stats.groups[f"{layer}.mlp.down_proj"] == f"{layer}.mlp.down_proj"
    assert len(stats.sums) == 8  # 4 distinct inputs per layer
    assert stats.for_module(f"{layer}.mlp.down_proj").shape == (64, 64)
    # Equal to X^T X of the inputs captured with a plain hook on the dense model.
    seen = []
    hook = model.model.layers[1].mlp.down_proj.register_forward_hook(
        lambda m, i, o: seen.append(i[0])
    )
    with torch.no_grad():
        model(calibration(4, 12))
    hook.remove()
    x = seen[0].reshape(-1, 64).double()
    torch.testing.assert_close(
        stats.for_module(f"{layer}.mlp.down_proj").double(), x.t() @ x, rtol=1e-5, atol=1e-5
    )


def test_combine_equals_statistics_of_the_concatenated_set(model):
    a, b = calibration(4, 12, seed=10), calibration(2, 12, seed=11)
    stats_a = collect_statistics(model, a, batch_size=2)
    stats_b = collect_statistics(model, b, batch_size=2)
    stats_ab = collect_statistics(model, torch.cat([a, b]), batch_size=2)
    mixed = LayerStatistics.combine({stats_a: 2.0, stats_b: 1.0})  # token shares 4:2
    assert mixed.kind == "hessian" and mixed.num_tokens == stats_ab.num_tokens == 72
    for key, value in stats_ab.sums.items():
        torch.testing.assert_close(mixed.sums[key], value, rtol=1e-5, atol=1e-4)
    wanda_a = collect_statistics(model, a, method="wanda", batch_size=4)
    diag_mix = LayerStatistics.combine({wanda_a: 2 / 3, stats_b: 1 / 3})
    assert diag_mix.kind == "sqnorm"
    for key, value in stats_ab.sums.items():
        torch.testing.assert_close(diag_mix.sums[key], torch.diagonal(value), rtol=1e-5, atol=1e-4)


def test_combine_rejects_bad_weights(model):
    stats = collect_statistics(model, calibration(2, 8), method="wanda")
    with pytest.raises(ValueError, match="weights must be >= 0 with a positive sum"):
        LayerStatistics.combine({stats: 0.0})
    with pytest.raises(ValueError, match="at least one"):
        LayerStatistics.combine({})


def test_save_load_round_trip(tmp_path, model):
    stats = collect_statistics(model, calibration(3, 8))
    stats.save(tmp_path / "s.safetensors")
    loaded = LayerStatistics.load(tmp_path / "s.safetensors")
    assert loaded.kind == stats.kind and loaded.groups == stats.groups
    assert loaded.num_tokens == stats.num_tokens
    assert all(torch.equal(loaded.sums[k], v) for k, v in stats.sums.items())
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="is not a LayerStatistics file"):
        LayerStatistics.load(tmp_path / "other.safetensors")


def test_combine_keeps_expert_counts_of_statistics_without_first_moments():
    """Statistics written before first moments were kept (old stores) still mix their routed
    experts' token counts; the mixture has no first moments, since not every part has them."""
    import torch

    from raysweep.pruning.statistics import LayerStatistics

    def part(tokens: float, expert_tokens: float) -> LayerStatistics:
        return LayerStatistics("sqnorm", {"e": torch.ones(3), "l": torch.ones(3)},
                               {"m.e": "e", "m.l": "l"}, tokens, {"e": expert_tokens})  # fmt: skip

    mixed = LayerStatistics.combine({part(10, 4): 1.0, part(10, 2): 1.0})
    assert mixed.count("e") == 6.0 and mixed.count("l") == 20.0
    assert mixed.firsts == {}
