"""One calibration identity: a local file's content, the tokenizer, packing, seed, seqlen and
count key the window cache, the one-shot statistics store and (for file-backed sources) the
trial id alike, so an edited file never reuses what was built from its old text."""

from __future__ import annotations

import os
import shutil

from raysweep.calibration import get_source
from raysweep.calibration.cache import cache_key, calibration_identity
from raysweep.calibration_statistics import statistics_key, store_path
from raysweep.config import validate_config
from raysweep.planning import search_points, trial_points


def _cfg(*sources: str, **search):  # noqa: ANN202
    tree = {
        "calibration": {"sources": list(sources), "n_samples": 2, "seqlen": 16},
        "pruning": {"methods": ["wanda"], "sparsities": [0.5], "mode": "oneshot"},
    }
    if search:
        tree["search"] = search
    return validate_config(tree)


def _keys(cfg, tokenizer, name):  # noqa: ANN001, ANN202
    (point,) = trial_points(cfg)
    window = cache_key(tokenizer, get_source(name), 16, 0, 2)
    store = store_path(statistics_key(point, name, "sqnorm", tokenizer, {}))
    return point.trial_id, window, store


def _edit_in_place(path, text: str) -> None:
    """New text of the same size; the mtime moves by a second (a coarse clock could miss it)."""
    before = path.stat()
    assert len(text) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def test_an_edited_file_source_is_a_new_point_with_new_windows_and_statistics(tmp_path, tokenizer):
    text = tmp_path / "notes.txt"
    text.write_text("the river runs by the old town " * 40)
    name = f"file:{text}"
    cfg = _cfg(name)
    before = _keys(cfg, tokenizer, name)
    assert before == _keys(cfg, tokenizer, name)
    _edit_in_place(text, "add seven plus three equals 10 " * 40)
    after = _keys(cfg, tokenizer, name)
    for old, new, what in zip(before, after, ("trial id", "window key", "store"), strict=True):
        assert old != new, what


def test_a_copy_with_other_stamps_keeps_its_identity(tmp_path, tokenizer):
    # Content, not mtime: a copy on another node (or a checkout) is the same calibration set.
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "notes.txt").write_text("the river runs by the old town " * 40)
    shutil.copy(a / "notes.txt", b / "notes.txt")
    os.utime(b / "notes.txt", ns=(0, 12345))
    source_a, source_b = (get_source(f"file:{d / 'notes.txt'}") for d in (a, b))
    id_a = calibration_identity(tokenizer, source_a, 16, 0, 2)["source"]["data_files"]
    id_b = calibration_identity(tokenizer, source_b, 16, 0, 2)["source"]["data_files"]
    assert id_a[0][1] == id_b[0][1] is not None


def test_the_statistics_store_follows_the_tokenizer(tmp_path, tokenizer):
    from transformers import PreTrainedTokenizerFast

    cfg = _cfg("toy_general_prose")
    (point,) = trial_points(cfg)
    other = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer,
                                    eos_token="<other>")  # fmt: skip
    keys = {
        store_path(statistics_key(point, "toy_general_prose", "sqnorm", t, {}))
        for t in (tokenizer, other)
    }
    assert len(keys) == 2


def test_search_points_carry_the_digests_of_every_searched_file(tmp_path):
    files = []
    for i in range(2):
        path = tmp_path / f"s{i}.txt"
        path.write_text(f"source {i} " * 50)
        files.append(f"file:{path}")
    cfg = _cfg(*files, sources=files, n_trials=3)
    (base,) = search_points(cfg)
    assert set(base.source_files) == set(files)
    other = base.model_copy(update={"mix": {files[1]: 1.0}})
    assert other.identity()["source_files"] == {files[1]: base.source_files[files[1]]}


def test_points_of_registered_sources_have_no_digests_in_their_ids():
    cfg = _cfg("toy_general_prose", "toy_math_word")
    assert all("source_files" not in p.identity() for p in trial_points(cfg))


def test_a_file_changed_after_planning_fails_its_trial_instead_of_mislabelling_it(tmp_path):
    import pytest

    from raysweep.trainables.trial import check_source_files

    text = tmp_path / "notes.txt"
    text.write_text("the river runs by the old town " * 40)
    (point,) = trial_points(_cfg(f"file:{text}"))
    check_source_files(point)
    _edit_in_place(text, "add seven plus three equals 10 " * 40)
    with pytest.raises(ValueError, match="changed since the sweep was planned"):
        check_source_files(point)
