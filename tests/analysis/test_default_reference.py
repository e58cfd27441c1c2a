"""The report's reference source when none is asked for: c4 where the run has it, else none and
no note about it (a toy run has no c4)."""

from __future__ import annotations

import numpy as np

from analysis import analyse
from analysis.__main__ import main as cli_main
from tests.analysis.items_fake import FakeRun, draw

N = 40


def _run(root, sources):  # noqa: ANN001, ANN202
    rng = np.random.default_rng(3)
    run = FakeRun(root, draw(rng, 0.9, N))
    for seed in range(2):
        for source in sources:
            run.add(draw(rng, 0.5, N), mix_name=source, seed=seed)
        mix = {"toy_math": 0.5, "toy_code": 0.5}
        run.add(draw(rng, 0.6, N), mix_name="uniform", mix=mix, seed=seed)
    return run


def test_a_run_without_c4_gets_no_reference_and_no_note(tmp_path, capsys):
    run = _run(tmp_path / "run", ["toy_math", "toy_code"])
    assert analyse(run.root, n_resamples=9, paired_resamples=20).reference is None
    out = tmp_path / "out"
    argv = [str(run.root), "--out", str(out), "--resamples", "9", "--paired-resamples", "20"]
    assert cli_main(argv) == 0
    notes = out / "paired_notes.csv"
    assert not notes.exists() or "reference source" not in notes.read_text()
    assert "reference source 'c4'" not in capsys.readouterr().out


def test_a_run_with_c4_keeps_it_as_the_default_reference(tmp_path):
    run = _run(tmp_path / "run", ["c4", "toy_math", "toy_code"])
    assert analyse(run.root, n_resamples=9, paired_resamples=20).reference == "c4"
    assert analyse(run.root, reference=None, n_resamples=9, paired_resamples=20).reference is None
