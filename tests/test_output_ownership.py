"""An output directory belongs to one config and one driver; bad configs exit 2 before work."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from raysweep.config import ConfigError, load_config
from raysweep.output import claim_output, config_conflicts, meaning_fingerprint
from raysweep.run import main

BASE = ["calibration.sources=[toy_general_prose]", "calibration.seqlen=64",
        "evaluation.limit=20"]  # fmt: skip


def _cfg(tmp_path, *overrides):
    return load_config(None, [*BASE, f"output_dir={tmp_path / 'run'}", *overrides])


def test_a_second_driver_is_refused_while_the_first_runs(tmp_path):
    cfg = _cfg(tmp_path)
    with claim_output(cfg) as out:
        assert (out / "config.yaml").is_file()
        busy = pytest.raises(ConfigError, match=r"in use by another raysweep driver \(pid \d+")
        with busy, claim_output(cfg):
            pass
    with claim_output(cfg):  # released when the first driver is done
        pass


def test_the_lock_dies_with_a_killed_driver(tmp_path):
    cfg = _cfg(tmp_path)
    holder = textwrap.dedent(f"""
        import os, signal, sys
        from raysweep.config import load_config
        from raysweep.output import claim_output
        cfg = load_config(None, {[*BASE, f"output_dir={tmp_path / 'run'}"]!r})
        with claim_output(cfg):
            print("held", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", holder], capture_output=True, text=True)
    assert done.returncode == -9 and "held" in done.stdout
    with claim_output(cfg):
        pass


def test_a_rerun_with_another_meaning_is_refused_and_config_kept(tmp_path):
    with claim_output(_cfg(tmp_path)):
        pass
    before = (tmp_path / "run" / "config.yaml").read_text()
    refused = pytest.raises(ConfigError, match=r"evaluation\.limit: 20 -> 30")
    with refused as err, claim_output(_cfg(tmp_path, "evaluation.limit=30")):
        pass
    assert "another --output" in str(err.value)
    assert (tmp_path / "run" / "config.yaml").read_text() == before
    # growing the sweep's axes resumes the same run
    with claim_output(_cfg(tmp_path, "pruning.sparsities=[0.5,0.7]", "calibration.seeds=[0,1]")):
        pass


def test_conflicts_name_every_field():
    old = {"model": {"path": "a"}, "calibration": {"n_samples": 8, "sources": ["x"]}}
    new = {"model": {"path": "b"}, "calibration": {"n_samples": 16, "sources": ["x", "y"]}}
    assert config_conflicts(old, new) == [
        "calibration.n_samples: 8 -> 16",
        "model.path: 'a' -> 'b'",
    ]


def _written_before_item_selection(cfg) -> dict:  # noqa: ANN001
    """``cfg``'s config.yaml as a run written before there was an item selection had it."""
    tree = cfg.model_dump(mode="json")
    for name in ("item_selection", "item_seed"):
        del tree["evaluation"][name]
    return tree


@pytest.mark.parametrize("limit", ["400", "null"])
def test_an_older_run_whose_limit_cuts_no_task_resumes_with_random_items(tmp_path, limit):
    # The toy tasks have 400 items: a limit of 400 (or none) scores every one of them.
    new = _cfg(tmp_path, f"evaluation.limit={limit}", "search={limit: 400}")
    old = _written_before_item_selection(new)
    del old["search"]["item_selection"]
    assert new.evaluation.item_selection == "random"
    assert config_conflicts(old, new.model_dump(mode="json")) == []
    assert meaning_fingerprint(old) == meaning_fingerprint(new.model_dump(mode="json"))


def test_an_older_run_with_a_cutting_limit_is_lm_evals_first_items(tmp_path):
    new = _cfg(tmp_path)  # limit 20 of 400: random subsets by default
    old = _written_before_item_selection(new)
    assert config_conflicts(old, new.model_dump(mode="json")) == [
        "evaluation.item_seed: '(absent)' -> 0",
        "evaluation.item_selection: '(absent)' -> 'random'",
    ]
    first = _cfg(tmp_path, "evaluation.item_selection=first", "evaluation.item_seed=4")
    assert config_conflicts(old, first.model_dump(mode="json")) == []
    reseeded = _cfg(tmp_path, "evaluation.item_seed=4").model_dump(mode="json")
    assert config_conflicts(new.model_dump(mode="json"), reseeded) == [
        "evaluation.item_seed: 0 -> 4"
    ]


def test_cli_refuses_a_busy_output_with_exit_2(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    with claim_output(cfg):
        code = main(["--output", str(tmp_path / "run"), *BASE])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: output_dir:") and "in use by another raysweep driver" in err
    assert not (tmp_path / "run" / "records.jsonl").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_is_a_clear_error(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        cfg = load_config(None, [*BASE, f"output_dir={parent / 'run'}"])
        with pytest.raises(ConfigError, match="is not writable"), claim_output(cfg):
            pass
    finally:
        parent.chmod(0o700)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["calibration.sources=[toy_general_prose,toy_general_prose]"],
         "sources must be distinct; repeated: ['toy_general_prose']"),
        (["calibration.n_samples=1000000000"], "n_samples"),
        (["calibration.seqlen=1024"], "calibration.seqlen: 1024 exceeds the model's"),
        (["model.device=tpu"], "model.device: 'tpu'"),
    ],
)  # fmt: skip
def test_cli_bad_inputs_exit_2_before_any_work(tmp_path, capsys, overrides, message):
    out = tmp_path / "run"
    code = main(["--output", str(out), *BASE, *overrides])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_empty_config_file_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("\n")
    assert main(["--config", str(empty), "--validate"]) == 2
    assert "is empty" in capsys.readouterr().err


def test_new_config_runs_apart_in_a_sub_run_that_a_rerun_finds_again(tmp_path):
    from raysweep.output import place_new_config

    first = _cfg(tmp_path)
    same, line = place_new_config(first)
    assert same is first and line is None  # nothing there yet: nothing to keep apart
    with claim_output(first):
        pass
    changed = _cfg(tmp_path, "evaluation.limit=30")
    placed, line = place_new_config(changed)
    sub = tmp_path / "run" / placed.output_dir.rsplit("/", 1)[1]
    assert placed.output_dir == str(sub) and sub.name.startswith("config-")
    assert "runs apart in" in line and str(sub) in line
    assert not sub.exists()  # placing writes nothing
    with claim_output(placed) as out:
        assert out == sub
    assert "limit: 30" in (sub / "config.yaml").read_text()
    assert "limit: 20" in (tmp_path / "run" / "config.yaml").read_text()
    # The same meaning, grown by a sparsity, goes to the same sub-run; the first config stays home.
    grown, _ = place_new_config(
        _cfg(tmp_path, "evaluation.limit=30", "pruning.sparsities=[0.5,0.6]")
    )
    assert grown.output_dir == str(sub)
    assert place_new_config(first)[0] is first
    assert place_new_config(_cfg(tmp_path, "evaluation.limit=40"))[0].output_dir != str(sub)


def test_debug_shows_the_traceback_of_a_user_error(tmp_path, capsys):
    bad = [f"--output={tmp_path / 'x'}", "--validate", "pruning.sparsities=[1.5]"]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert main([*bad, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "pruning.sparsities" in err
    assert not (tmp_path / "x").exists()


def test_the_command_line_refuses_a_changed_config_unless_told(tmp_path, capsys):
    with claim_output(_cfg(tmp_path)):
        pass
    argv = ["--output", str(tmp_path / "run"), *BASE[:2], "evaluation.limit=30"]
    assert main(argv) == 2  # refused when the driver claims the directory, before Ray starts
    err = capsys.readouterr().err
    assert "evaluation.limit: 20 -> 30" in err and "--new-config" in err
    assert main([*argv, "--new-config", "--validate"]) == 0
    out = capsys.readouterr().out
    assert "--new-config:" in out and "config-" in out
    assert "limit: 20" in (tmp_path / "run" / "config.yaml").read_text()
