"""N:M structures: the sparsity is derived from the structure in one place, every structure the
config accepts prunes, and the search's axes take the grid's validators."""

from __future__ import annotations

import pytest
import torch

from raysweep.config import ConfigError, SweepConfig, TrialConfig, validate_config
from raysweep.names import parse_structure
from raysweep.planning import search_points, trial_config, trial_points
from raysweep.pruning.architecture import decoder_matrices
from raysweep.pruning.prune import prune_model
from tests.tiny import tiny_llama

# Ratios that are not exact in six decimals (2:6, 1:3, 5:6) beside the usual ones.
STRUCTURES = ["1:2", "2:4", "4:8", "1:3", "2:6", "5:6", "3:4"]


def _cfg(**pruning) -> SweepConfig:
    return validate_config({"pruning": pruning})


@pytest.mark.parametrize("structure", STRUCTURES)
def test_every_structure_the_config_accepts_prunes_at_its_own_ratio(structure):
    cfg = _cfg(structures=[structure], sparsities=[parse_structure(structure).sparsity])
    trial = trial_config(cfg, phase="grid", mix={"a": 1.0}, mix_name="a", method="magnitude",
                         structure=structure, sparsity=0.5, seed=0)  # fmt: skip
    # Widths divisible by 2, 3, 4, 6 and 8: hidden 48, FFN 96, head dim 12.
    model = tiny_llama(64, hidden_size=48, intermediate_size=96)
    report = prune_model(model, None, "magnitude", trial.sparsity, structure=trial.structure)
    nm = parse_structure(structure)
    assert trial.sparsity == nm.sparsity
    assert report.achieved_sparsity == pytest.approx(nm.sparsity)
    weight = next(iter(decoder_matrices(model).values()))
    groups = (weight != 0).reshape(weight.shape[0], -1, nm.group).sum(-1)
    assert torch.all(groups <= nm.keep)


def test_a_trial_config_derives_its_sparsity_from_the_structure_and_round_trips():
    trial = TrialConfig(mix={"a": 1}, mix_name="a", structure="2:6", sparsity=0.666667)
    assert trial.sparsity == 2 / 3
    again = TrialConfig.model_validate_json(trial.model_dump_json())
    assert again.sparsity == trial.sparsity and again.trial_id == trial.trial_id


def test_search_points_carry_the_exact_ratio():
    cfg = validate_config({
        "calibration": {"sources": ["toy_general_prose", "toy_math_word"]},
        "pruning": {"methods": ["wanda"], "sparsities": [0.5], "structures": ["unstructured"]},
        "search": {"structures": ["unstructured", "2:6"], "sparsities": [0.6]},
    })  # fmt: skip
    assert [(p.structure, p.sparsity) for p in search_points(cfg)] == [
        ("unstructured", 0.6),
        ("2:6", 2 / 3),
    ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("search.sparsities=[1.5]", "search.sparsities: sparsity 1.5 is outside [0, 1)"),
        ("search.structures=['3:2']", "search.structures: '3:2' is impossible"),
        ("search.structures=['x']", "search.structures: 'x' is not 'unstructured' or an 'N:M'"),
        ("pruning.structures=['2:4']", "pruning.sparsities [0.7] are taken by no structure"),
        ("search.structures=['2:4']", "search.sparsities [0.7] are taken by no structure"),
        ("search.structures=[1:3]", "search.structures: 63 is a number: quote an N:M structure"),
        ("pruning.structures=[2:4]", "pruning.structures: 124 is a number: quote an N:M"),
    ],
)
def test_bad_search_axes_exit_2_with_one_line_naming_the_field(override, expected, capsys):
    from raysweep.run import main

    assert main(["--config", "configs/toy_search.yaml", "--validate", override]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err


def test_a_structure_beside_unstructured_keeps_the_grid_valid():
    cfg = _cfg(structures=["unstructured", "2:4"], sparsities=[0.6, 0.7])
    points = {(t.structure, t.sparsity) for t in trial_points(cfg)}
    assert points == {("unstructured", 0.6), ("unstructured", 0.7), ("2:4", 0.5)}
    with pytest.raises(ConfigError, match=r"pruning.sparsities \[0.7\]"):
        _cfg(structures=["2:4"], sparsities=[0.5, 0.7])


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--structure", "2:4"], ("2:4", 0.5)),
        (["--structure", "1:3"], ("1:3", 2 / 3)),
        (["--structure", "unstructured", "--sparsity", "0.6"], ("unstructured", 0.6)),
    ],
)
def test_prune_structure_alone_names_one_point(flags, expected):
    from raysweep.prune import build_parser, resolve

    args = build_parser().parse_args(["--calibration", "toy_math_word", "--method", "magnitude",
                                      *flags])  # fmt: skip
    _, trial, _ = resolve(args)
    assert (trial.structure, trial.sparsity) == expected
