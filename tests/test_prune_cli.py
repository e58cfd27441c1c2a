"""``python -m raysweep.prune``: one point pruned, saved as a plain dense checkpoint with its card,
validated like a sweep config, and reproduced exactly from a sweep's record."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from raysweep.calibration import allocate_counts, build_calibration_set
from raysweep.cli import main as raysweep_main
from raysweep.config import EvaluationConfig, TrialConfig
from raysweep.dense import DenseBaseline
from raysweep.evaluation import CapabilityScores
from raysweep.pipeline import prune_trial, run_trial
from raysweep.prune import CARD_FILE, main, prune_point, recipe_card, save_pruned
from raysweep.pruning.architecture import decoder_matrices
from raysweep.records import RECORDS_FILE, append_record

MIX = "toy_math_word=0.3,toy_general_prose=0.7"
SMALL = ["--n-samples", "10", "--seqlen", "64"]


def _trial(**kw) -> TrialConfig:
    base = {"mix": {"toy_math_word": 0.3, "toy_general_prose": 0.7}, "mix_name": "mix",
            "n_samples": 10, "seqlen": 64, "method": "wanda", "sparsity": 0.5,
            "evaluation": EvaluationConfig(suite="toy", limit=2, perplexity=False)}  # fmt: skip
    return TrialConfig(**{**base, **kw})


def _masks(model) -> dict[str, torch.Tensor]:
    return {name: w == 0 for name, w in decoder_matrices(model).items()}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A pruned toy model (in memory) and its saved directory."""
    trial = _trial()
    pruned = prune_point(trial, log=lambda line: None)
    directory = tmp_path_factory.mktemp("pruned")
    info = save_pruned(pruned, directory, recipe_card(trial, pruned, total_s=1.0))
    return trial, pruned, directory, info


def test_saved_model_reloads_with_exactly_the_pruned_weights(saved):
    trial, pruned, directory, info = saved
    reloaded = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    mine = pruned.loaded.model.state_dict()
    theirs = reloaded.state_dict()
    assert set(mine) == set(theirs)
    for name, tensor in mine.items():
        assert torch.equal(tensor, theirs[name]), name
    zeros = sum(int(m.sum()) for m in _masks(reloaded).values())
    total = sum(m.numel() for m in _masks(reloaded).values())
    assert zeros / total == pytest.approx(pruned.report.achieved_sparsity)
    config = json.loads((directory / "config.json").read_text())
    assert "sparsity_config" not in config and "quantization_config" not in config
    assert config["use_cache"] is True  # calibration turned it off; the checkpoint generates
    assert {"model.safetensors", "tokenizer.json", CARD_FILE} <= set(info["files"])
    assert info["bytes"] > 1_000_000


def test_lm_evals_hf_model_loads_the_saved_directory_with_its_zeros(saved):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    trial, pruned, directory, info = saved
    lm = HFLM(pretrained=str(directory), batch_size=4, max_length=128, device="cpu",
              dtype="float32")  # fmt: skip
    theirs = _masks(lm.model)
    for name, mask in _masks(pruned.loaded.model).items():
        assert torch.equal(mask, theirs[name]), name
    request = Instance("loglikelihood", {}, ("The river", " runs"), 0)
    ((logprob, _),) = lm.loglikelihood([request], disable_tqdm=True)
    assert logprob < 0 and logprob == logprob  # a finite log-probability from the pruned model


def test_recipe_card_has_the_counts_and_rebuilds_the_same_calibration_set(saved):
    trial, pruned, directory, _ = saved
    card = json.loads((directory / CARD_FILE).read_text())
    cal = card["calibration"]
    assert cal["counts"] == {"toy_math_word": 3, "toy_general_prose": 7}
    assert cal["counts"] == allocate_counts(trial.mix, trial.n_samples)
    assert (cal["n_samples"], cal["seqlen"], cal["seed"]) == (10, 64, 0)
    assert set(cal["metrics"]) >= {"perplexity", "ngram4_aggregation"}
    assert card["pruning"]["method"] == "wanda" and card["pruning"]["achieved_sparsity"] == 0.5
    # 7 matrices in each of the toy model's 6 decoder layers.
    assert len(card["pruning"]["per_module"]) == 42 and "prune_s" in card["timings"]
    assert "save_s" in card["timings"] and card["versions"]["torch"] == torch.__version__
    again = TrialConfig.model_validate(card["config"])
    assert again.trial_id == trial.trial_id == card["trial_id"]
    rebuilt = build_calibration_set(pruned.loaded.tokenizer, again.mix, again.n_samples,
                                    again.seqlen, again.seed)  # fmt: skip
    assert torch.equal(rebuilt, pruned.calibration)


def test_cli_prunes_saves_and_prints_each_layer(tmp_path, capsys):
    out = tmp_path / "model"
    argv = ["--calibration", MIX, "--method", "magnitude", "--sparsity", "0.6", *SMALL]
    assert main([*argv, "--save", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "layer 1/6 pruned" in printed and "layer 6/6 pruned" in printed
    assert "toy_math_word=0.3 (3 windows)" in printed and f"saved to {out}" in printed
    card = json.loads((out / CARD_FILE).read_text())
    assert card["pruning"]["sparsity"] == 0.6 and card["pruning"][
        "achieved_sparsity"
    ] == pytest.approx(0.6, abs=1e-4)
    assert AutoModelForCausalLM.from_pretrained(out) is not None
    # A non-empty DIR is refused before any work; --overwrite replaces it.
    assert main([*argv, "--save", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert raysweep_main(["prune", *argv, "--save", str(out), "--overwrite"]) == 0


def test_cli_reads_a_mix_from_yaml(tmp_path, capsys):
    mix = tmp_path / "best.yaml"
    mix.write_text("name: best\nweights: {toy_math_word: 1, toy_code_programs: 3}\n")
    assert main(["--calibration", str(mix), "--method", "magnitude", "--sparsity", "0.5",
                 *SMALL]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "magnitude-0.5-best-s0" in printed and "toy_code_programs=0.75 (8 windows)" in printed


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--calibration", "toy_mth", "--method", "wanda", "--sparsity", "0.5"],
         "--calibration (calibration.sources): unknown calibration source 'toy_mth'"),
        (["--calibration", "toy_math_word=abc", "--method", "wanda", "--sparsity", "0.5"],
         "unable to parse string as a number (got 'abc')"),
        (["--calibration", "toy_math_word", "--method", "wandax", "--sparsity", "0.5"],
         "--method (pruning.methods.0): Input should be 'magnitude', 'wanda', 'sparsegpt' or 'ria'"),
        (["--calibration", "toy_math_word", "--method", "wanda", "--sparsity", "1.5"],
         "--sparsity (pruning.sparsities): sparsity 1.5 is outside [0, 1)"),
        (["--calibration", "toy_math_word", "--method", "wanda"],
         "--sparsity: 3 values [0.6, 0.7, 0.8]; give one"),
        (["--calibration", "toy_math_word", "--method", "wanda", "--sparsity", "0.5",
          "--seqlen", "4096"], "--seqlen (calibration.seqlen): 4096 exceeds the model's"),
        (["--calibration", "toy_math_word", "--method", "wanda", "--sparsity", "0.5",
          "--structure", "4:2"], "'4:2' is impossible"),
        (["--calibration", "toy_math_word", "--method", "wanda", "--sparsity", "0.5",
          "--evaluate", "nosuch"], "--evaluate: 'nosuch' is neither a built-in suite"),
        (["--calibration", "toy_math_word", "--method", "wanda", "--sparsity", "0.5",
          "pruning.damp=-1"], "pruning.damp: Input should be greater than 0"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_flag_without_a_traceback(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err


def test_from_record_reproduces_a_sweep_trials_masks(tmp_path, capsys):
    trial = _trial(method="sparsegpt", structure="2:4", sparsity=0.5, mix_name="mix")
    dims = ("general", "commonsense", "code", "math")
    record = run_trial(
        trial, DenseBaseline("test-dense", CapabilityScores({}, {d: 1.0 for d in dims}))
    )
    run = tmp_path / "run"
    append_record(run / RECORDS_FILE, record)
    out = tmp_path / "again"
    assert main(["--from-record", str(run), trial.trial_id[:8], "--save", str(out)]) == 0
    assert "note:" not in capsys.readouterr().out  # the very same point
    card = json.loads((out / CARD_FILE).read_text())
    assert card["trial_id"] == record.trial_id and card["from_record"]["status"] == "ok"
    direct = prune_trial(trial, keep_pristine=False)
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    masks, expected = _masks(reloaded), _masks(direct.loaded.model)
    assert set(masks) == set(expected)
    for name, mask in expected.items():
        assert torch.equal(masks[name], mask), name
    assert card["pruning"]["achieved_sparsity"] == pytest.approx(record.achieved_sparsity)
    # Flags that would change the point are refused with --from-record.
    assert main(["--from-record", str(run), trial.trial_id, "--method", "wanda"]) == 2
    assert main(["--from-record", str(run), "ffffffff"]) == 2
    assert "no record of 'ffffffff'" in capsys.readouterr().err


def test_evaluate_prints_retention_and_writes_it_beside_the_model(tmp_path, capsys):
    out = tmp_path / "scored"
    argv = ["--calibration", "toy_code_programs", "--method", "wanda", "--sparsity", "0.5",
            *SMALL, "--save", str(out), "--evaluate", "toy", "evaluation.limit=3",
            "evaluation.perplexity=false"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "dense  retention" in printed and "worst retention" in printed
    card = json.loads((out / CARD_FILE).read_text())
    scores = json.loads((out / "raysweep_eval.json").read_text())
    assert card["evaluation"] == scores and scores["suite"] == "toy"
    assert set(scores["retention"]) == {"general", "commonsense", "code", "math"}
    assert card["config"]["evaluation"]["limit"] == 3
    # The Hub model card says how it was pruned and what it retains.
    from huggingface_hub import ModelCard

    model_card = ModelCard.load(out / "README.md")
    assert {"pruned", "wanda"} <= set(model_card.data.tags)
    assert "## Retention per capability dimension" in model_card.text
    assert "--calibration toy_code_programs=1.0 --method wanda" in model_card.text


def test_a_source_clearly_too_small_is_refused_before_any_work(tmp_path, capsys):
    text = tmp_path / "tiny.txt"
    text.write_text("just a few words of text\n")
    argv = ["--calibration", f"file:{text}", "--method", "wanda", "--sparsity", "0.5", *SMALL]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: calibration source 'file:{text}': holds about ")
    assert "10 windows of calibration.seqlen 64 need 640" in err and "Traceback" not in err


def test_a_source_just_too_small_for_the_set_exits_2_with_one_line(tmp_path, capsys):
    # About 0.8 of the 640 tokens needed: within the preflight's tolerance for its estimate,
    # so the calibration build finds the shortfall, exactly, and says so in one line.
    text = tmp_path / "short.txt"
    text.write_text("The river runs past the old mill and the miller counts his grain. " * 19)
    argv = ["--calibration", f"file:{text}", "--method", "wanda", "--sparsity", "0.5", *SMALL]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error: ValueError: calibration source" in err and "too small" in err
    assert "Traceback" not in err


def test_moe_model_saves_fused_experts_and_its_card_says_so(tmp_path):
    trial = _trial(model={"path": "raysweep-toy-moe"}, n_samples=8, seqlen=32)
    pruned = prune_point(trial, log=lambda line: None)
    info = save_pruned(pruned, tmp_path, recipe_card(trial, pruned, total_s=1.0))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    theirs = reloaded.state_dict()
    for name, tensor in pruned.loaded.model.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    card = json.loads((tmp_path / CARD_FILE).read_text())
    experts = card["experts"]
    assert experts["experts"] == 32 and experts["expert_fallback"] == "layer"
    assert len(experts["expert_tokens"]) == 4 and len(experts["expert_tokens"][0]) == 8
    assert "expert_coverage" in card["calibration"]["metrics"]
    assert info["bytes"] > 8_000_000


def _model_with_code(tmp_path, marker):
    """The toy model in a folder whose config.json maps AutoModelForCausalLM to a class in a
    ``modeling_x.py`` that writes ``marker`` when it is imported."""
    import shutil

    from raysweep.config import ModelConfig
    from raysweep.models import resolve_model_path

    folder = tmp_path / "model-with-code"
    shutil.copytree(resolve_model_path(ModelConfig()), folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_x.MarkedLlama"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_x.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "from transformers import LlamaForCausalLM\n\n\n"
        "class MarkedLlama(LlamaForCausalLM):\n    pass\n"
    )
    return folder


def test_a_record_never_switches_code_execution_on(tmp_path, capsys):
    from raysweep.pipeline import error_record

    marker = tmp_path / "the-model-code-ran"
    folder = _model_with_code(tmp_path, marker)
    trial = _trial(model={"path": str(folder), "trust_remote_code": True},
                   evaluation=EvaluationConfig(suite="toy", limit=2, perplexity=False,
                                               allow_code_execution=True))  # fmt: skip
    record = error_record(trial, "", attempts=1).model_copy(update={"status": "ok", "error": None})
    run = tmp_path / "run"
    append_record(run / RECORDS_FILE, record)
    out = tmp_path / "again"
    assert main(["--from-record", str(run), trial.trial_id, "--save", str(out)]) == 0
    printed = capsys.readouterr().out
    assert not marker.exists()  # the model folder's Python never ran
    assert not list(out.glob("*.py"))  # nor was it copied into the saved model
    assert "auto_map" not in json.loads((out / "config.json").read_text())
    card = json.loads((out / CARD_FILE).read_text())
    assert card["model"]["trust_remote_code"] is False
    assert card["config"]["model"]["trust_remote_code"] is False
    assert card["config"]["evaluation"]["allow_code_execution"] is False
    # One line says what the record asked for and that it is off; no made-up overrides.
    lines = [line for line in printed.splitlines() if "trust_remote_code" in line]
    assert len(lines) == 1 and "not enabled" in lines[0] and "allow_code_execution" in lines[0]
    assert "model.trust_remote_code=true" in lines[0]
    assert "overrides change the point" not in printed
    # The override on this command line is what enables it, and the console says so.
    trusted = tmp_path / "trusted"
    argv = ["--from-record", str(run), trial.trial_id, "--save", str(trusted),
            "model.trust_remote_code=true"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert marker.exists() and (trusted / "modeling_x.py").is_file()
    assert "enabled: model.trust_remote_code (on this command line)" in printed
    assert json.loads((trusted / CARD_FILE).read_text())["model"]["trust_remote_code"] is True


def test_a_save_that_fails_midway_leaves_the_previous_model(tmp_path, monkeypatch):
    import errno
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from raysweep.prune import save_pruned
    from raysweep.toyworld import ensure_toy_model
    from tests.tiny import tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(ensure_toy_model())
    pruned = SimpleNamespace(
        loaded=SimpleNamespace(model=tiny_llama(len(tokenizer)), tokenizer=tokenizer)
    )
    card = {"trial_id": "t", "model": {"path": "x"}, "calibration": {}, "pruning": {},
            "config": {}}  # fmt: skip
    target = tmp_path / "model"
    target.mkdir()
    (target / "previous.txt").write_text("the model saved before\n")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tokenizer, "save_pretrained", full_disk)
    monkeypatch.setattr("raysweep.prune.write_model_card", lambda d, c: None)
    with pytest.raises(OSError, match="No space left"):
        save_pruned(pruned, target, card)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left
    assert [p.name for p in target.iterdir()] == ["previous.txt"]
