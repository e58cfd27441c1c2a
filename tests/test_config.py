import subprocess
import sys

import pytest
import yaml

from raysweep.config import (
    ConfigError,
    SweepConfig,
    apply_overrides,
    load_config,
    parse_structure,
    structure_sparsity,
    validate_config,
)

BASE = {"calibration": {"sources": ["toy_math"]}}


def _tree(**sections):
    tree = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in sections.items():
        apply_overrides(tree, [f"{dotted.replace('__', '.')}={yaml.safe_dump(value).strip()}"])
    return tree


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        (
            "pruning.sparsityz=[0.5]",
            ["pruning.sparsityz", "unknown key", "did you mean 'sparsities'"],
        ),
        ("pruning.sparsities=[0.5,1.0]", ["pruning.sparsities", "sparsity 1.0 is outside [0, 1)"]),
        ("pruning.sparsities=[-0.1]", ["pruning.sparsities", "outside [0, 1)"]),
        ("pruning.structures=['3:2']", ["pruning.structures", "'3:2' is impossible", "1 <= N < M"]),
        ("pruning.structures=['2:0']", ["pruning.structures", "'2:0' is impossible"]),
        ("pruning.structures=['2-4']", ["pruning.structures", "not 'unstructured' or an 'N:M'"]),
        (
            "pruning.methods=['obs']",
            ["pruning.methods.0", "'magnitude', 'wanda', 'sparsegpt' or 'ria'", "'obs'"],
        ),
        ("calibration.seqlen=0", ["calibration.seqlen", "greater than 0", "got 0"]),
        ("calibration.n_samples=-3", ["calibration.n_samples", "greater than 0"]),
        (
            "calibration.mixes=[{name: m, weights: {toy_math: -1, toy_code: 2}}]",
            ["calibration.mixes.0.weights", "weight of 'toy_math' is -1.0", ">= 0"],
        ),
        (
            "calibration.mixes=[{name: m, weights: {toy_math: 0, toy_code: 0}}]",
            ["calibration.mixes.0.weights", "all weights in mix weights are zero"],
        ),
        ("evaluation.batch_size=0", ["evaluation.batch_size", "greater than 0"]),
        (
            "evaluation.item_selection=last",
            ["evaluation.item_selection", "Input should be 'random' or 'first'", "(got 'last')"],
        ),
        ("evaluation.item_seed=x", ["evaluation.item_seed", "valid integer", "(got 'x')"]),
        (
            "search={item_selection: top}",
            ["search.item_selection", "Input should be 'random' or 'first'", "(got 'top')"],
        ),
        (
            "search={seeds: [1, 2, 1]}",
            ["search.seeds", "search seeds must be distinct; repeated: [1]", "(got [1, 2, 1])"],
        ),
        ("search={seeds: []}", ["search.seeds", "at least 1 item", "(got [])"]),
    ],
)
def test_bad_config_names_field_value_and_allowed(override, needles):
    tree = apply_overrides(yaml.safe_load(yaml.safe_dump(BASE)), [override])
    with pytest.raises(ConfigError) as info:
        validate_config(tree)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, msg
    assert len(msg.splitlines()) <= 24  # one screen


def test_structure_parsing():
    assert parse_structure("unstructured") is None
    assert parse_structure("2:4") == (2, 4)
    assert parse_structure(" 4 : 8 ") == (4, 8)
    assert structure_sparsity("2:4", 0.7) == 0.5
    assert structure_sparsity("unstructured", 0.7) == 0.7


def test_mix_weights_are_normalised_and_zero_weights_dropped():
    cfg = SweepConfig.model_validate(
        {"calibration": {"mixes": [{"name": "m", "weights": {"a": 2, "b": 6, "c": 0}}]}}
    )
    assert cfg.calibration.mixes[0].weights == {"a": 0.25, "b": 0.75}


def test_yaml_round_trip_is_identical():
    cfg = SweepConfig.model_validate(
        {
            "name": "rt",
            "calibration": {
                "sources": ["toy_math", "toy_code"],
                "mixes": [{"name": "m", "weights": {"toy_math": 1, "toy_code": 3}}],
                "seeds": [0, 1, 2],
            },
            "pruning": {"sparsities": [0.6, 0.7], "structures": ["unstructured", "2:4"]},
            "search": {"n_trials": 12},
        }
    )
    again = SweepConfig.model_validate(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    assert again.to_yaml() == cfg.to_yaml()


def test_overrides_parse_yaml_values_and_reject_garbage():
    tree = apply_overrides({}, ["pruning.sparsities=[0.5, 0.7]", "evaluation.limit=20", "name=x"])
    assert tree == {"pruning": {"sparsities": [0.5, 0.7]}, "evaluation": {"limit": 20}, "name": "x"}
    with pytest.raises(ConfigError, match="not of the form key.sub=value"):
        apply_overrides({}, ["pruning.sparsities"])
    with pytest.raises(ConfigError, match="name is not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/sweep.yaml")


def test_default_config_loads_and_round_trips():
    cfg = load_config()
    assert cfg.model.path == "raysweep-toy"
    assert cfg.resources.gpu == 0
    assert SweepConfig.model_validate(yaml.safe_load(cfg.to_yaml())) == cfg


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("pruning.sparsities=[1.5]", "pruning.sparsities"),
        ("pruning.structures=['3:2']", "pruning.structures"),
        ("pruning.methods=['obs']", "pruning.methods"),
        ("calibration.seqlen=0", "calibration.seqlen"),
        ("calibration.sources=['toy_mathz']", "calibration.sources"),
        ("search.seeds=[3,3]", "search.seeds: search seeds must be distinct"),
        ("bogus=1", "bogus: unknown key"),
    ],
)
def test_cli_bad_config_exits_2_and_writes_nothing(tmp_path, override, needle):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "raysweep.run", "--output", str(out), override],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert not out.exists()
    assert "ray" not in proc.stderr.lower().split("error:")[0]


def test_cli_help():
    proc = subprocess.run(
        [sys.executable, "-m", "raysweep.run", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "--smoke-test" in proc.stdout and "key.sub=value" in proc.stdout


# --------------------------------------------------------------------------- mix names

_TWO = ["toy_math_word", "toy_general_prose"]
_ALLOWED = "allowed: a non-empty name that no source, built-in mix (uniform, equal_sources) or"


@pytest.mark.parametrize(
    ("calibration", "needle"),
    [
        ({"sources": _TWO, "mixes": [{"name": "toy_math_word",
                                      "weights": {"toy_general_prose": 1, "toy_code_programs": 1}}]},
         "calibration.mixes.0.name: 'toy_math_word' is the name of a calibration source"),
        # A registered source the config does not list is a source's name all the same.
        ({"sources": _TWO, "mixes": [{"name": "toy_code_programs", "weights": {"toy_math_word": 1}}]},
         "calibration.mixes.0.name: 'toy_code_programs' is the name of a calibration source"),
        ({"sources": _TWO, "custom_sources": {"notes": {"dataset": "someone/notes", "text_field": "text"}},
          "mixes": [{"name": "notes", "weights": {"toy_math_word": 1}}]},
         "calibration.mixes.0.name: 'notes' is the name of a calibration source"),
        ({"sources": _TWO, "mixes": [{"name": "", "weights": {"toy_math_word": 1}}]},
         "calibration.mixes.0.name: a mix name must not be empty"),
        ({"sources": _TWO, "mixes": [{"name": "  ", "weights": {"toy_math_word": 1}}]},
         "calibration.mixes.0.name: a mix name must not be empty"),
        ({"sources": _TWO, "mixes": [{"name": "uniform", "weights": {"toy_math_word": 1}}]},
         "calibration.mixes.0.name: 'uniform' is the name of the built-in uniform mix"),
        ({"sources": _TWO, "mixes": [{"name": "m", "weights": {"toy_math_word": 1}},
                                     {"name": "equal_sources", "weights": {"toy_math_word": 1}}]},
         "calibration.mixes.1.name: 'equal_sources' is the name of the built-in equal_sources mix"),
        ({"sources": _TWO, "mixes": [{"name": "m", "weights": {"toy_math_word": 1}},
                                     {"name": "m", "weights": {"toy_general_prose": 1}}]},
         "calibration.mixes.1.name: 'm' is the name of calibration.mixes.0 too"),
    ],
)  # fmt: skip
def test_a_mix_name_that_could_collide_is_a_config_error(calibration, needle):
    with pytest.raises(ConfigError) as info:
        validate_config({"calibration": calibration})
    problems = str(info.value).splitlines()[1:]
    assert len(problems) == 1, problems  # one line: the field, the value, what is allowed
    assert needle in problems[0] and _ALLOWED in problems[0], problems[0]


def test_a_mix_may_be_the_sweeps_uniform_mix_when_the_built_in_one_is_off():
    # configs/toy_selfgen.yaml: the uniform mix of sources the grid does not run alone.
    mix = {"name": "uniform", "weights": {"toy_math_word": 1, "toy_general_prose": 1}}
    cfg = validate_config({"calibration": {"sources": ["toy_code_programs"], "mixes": [mix],
                                           "uniform_mix": False}})  # fmt: skip
    assert [m.name for m in cfg.calibration.mixes] == ["uniform"]


def test_a_colliding_mix_name_exits_2_before_any_work(tmp_path, capsys):
    from raysweep.run import main

    out = tmp_path / "run"
    mixes = "calibration.mixes=[{name: toy_math_word, weights: {toy_general_prose: 1}}]"
    # --validate: no Ray is started even where the name is (wrongly) accepted.
    argv = ["--output", str(out), "--validate", "calibration.sources=[toy_math_word]", mixes]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "calibration.mixes.0.name: 'toy_math_word' is the name of a calibration source" in err
    assert "Traceback" not in err and not out.exists()
