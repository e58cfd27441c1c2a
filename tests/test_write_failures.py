"""A full disk while the driver writes a trial's side file or record: one ``[raysweep]`` line
naming the file and the cause and a non-zero exit, not Tune's wrapped traceback. Tune's loop is
replaced by one that wraps a callback's exception as Tune does (no Ray)."""

from __future__ import annotations

import errno
import pickle
import traceback
from types import SimpleNamespace

import pytest

from raysweep import items as side
from raysweep.config import TrialConfig
from raysweep.evaluation import CapabilityScores, TaskItems, get_suite
from raysweep.records import read_records

SCORES = CapabilityScores({"toy_general_facts": 0.5}, {"general": 0.5},
                          items={"toy_general_facts": TaskItems((0, 1), (1.0, 0.0))})  # fmt: skip


def _full(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
    raise OSError(errno.ENOSPC, "No space left on device")


def _result(point: TrialConfig) -> dict:
    from raysweep.pipeline import error_record
    from raysweep.trainables import ITEMS_KEY, RECORD_KEY

    record = error_record(point, "", attempts=1).model_copy(
        update={"status": "ok", "error": None, "task_scores": dict(SCORES.task_scores)}
    )
    payload = side.trial_payload(point.trial_id, "k", SCORES, get_suite("toy"))
    return {RECORD_KEY: record.to_json(), ITEMS_KEY: side.dumps(payload)}


def _trial(point: TrialConfig) -> SimpleNamespace:
    return SimpleNamespace(trial_id="tune_0001", num_failures=0,
                           config={"point": point.model_dump(mode="json")})  # fmt: skip


@pytest.mark.parametrize("where", ["items", "records"])
def test_the_record_writer_names_the_file_a_full_disk_refused(tmp_path, monkeypatch, where):
    from raysweep.atomic import WriteError
    from raysweep.trainables import callbacks

    point = TrialConfig(mix={"toy_web": 1.0}, mix_name="toy_web")
    if where == "items":
        monkeypatch.setattr(side, "write_text_atomic", _full)
        path = side.trial_items_path(tmp_path, point.trial_id)
    else:
        monkeypatch.setattr(callbacks, "append_record", _full)
        path = tmp_path / "records.jsonl"
    writer = callbacks.RecordWriter(tmp_path / "records.jsonl")
    with pytest.raises(WriteError) as caught:
        writer.on_trial_result(0, [], _trial(point), _result(point))
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    assert caught.value.errno == errno.ENOSPC and writer.failure is caught.value
    assert str(pickle.loads(pickle.dumps(writer)).failure) == str(caught.value)  # Tune pickles it
    assert not read_records(tmp_path / "records.jsonl").records  # no record without its file


class _TuneLikeTuner:
    """Runs the first point and hands its result to the callbacks; a callback's exception comes
    out as Tune's does: a TuneError holding the whole traceback."""

    def __init__(self, trainable, *, param_space, tune_config, run_config) -> None:  # noqa: ANN001
        self.point = TrialConfig.model_validate(param_space["point"]["grid_search"][0])
        self.callbacks = run_config.callbacks

    def fit(self) -> None:
        from ray.tune.error import TuneError

        try:
            for callback in self.callbacks:
                callback.on_trial_result(0, [], _trial(self.point), _result(self.point))
        except Exception:
            raise TuneError(traceback.format_exc()) from None


def test_a_full_disk_under_tune_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    import raysweep.run as run
    import raysweep.trainables.grid as grid
    from raysweep.dense import DenseBaseline

    monkeypatch.setattr(side, "write_text_atomic", _full)
    monkeypatch.setattr(grid.tune, "Tuner", _TuneLikeTuner)
    monkeypatch.setattr(run, "start_ray", lambda cfg: None)
    monkeypatch.setattr(
        run, "sweep_baseline", lambda point, out, compute: DenseBaseline("k", SCORES)
    )
    out = tmp_path / "run"
    argv = ["--output", str(out), "--mode", "grid", "analysis=false", "evaluation.limit=2",
            "calibration.sources=[toy_general_prose]", "pruning.methods=[wanda]",
            "pruning.sparsities=[0.5]", "calibration.seqlen=64", "calibration.n_samples=8"]  # fmt: skip
    assert run.main(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"[raysweep] cannot write {out.resolve()}/items/")
    assert "No space left on device" in lines[0] and "rerun the same command" in lines[0]


def test_the_atomic_writer_names_the_file_it_could_not_write(tmp_path):
    from raysweep.atomic import WriteError, write_text_atomic

    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "x.json"  # its folder cannot be made
    with pytest.raises(WriteError, match=f"^cannot write {target}: "):
        write_text_atomic(target, "{}")
