"""``python -m analysis`` reports what it cannot do, with exit 2 and no traceback."""

from __future__ import annotations

from pathlib import Path

from analysis.__main__ import main
from tests.analysis.hand import GOLDEN


def test_unwritable_report_directory_exits_2(capsys):
    # /proc refuses new directories even to root, like a read-only run directory would.
    code = main([str(GOLDEN), "--out", "/proc/raysweep-report", "--resamples", "9"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write the report to '/proc/raysweep-report'")
    assert "give --out DIR" in err


def test_missing_run_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_unwritable_run_directory_falls_back_to_a_named_location(tmp_path, monkeypatch, capsys):
    import shutil

    import analysis.__main__ as cli

    run = tmp_path / "myrun"
    run.mkdir()
    shutil.copy(GOLDEN, run / "records.jsonl")
    real = cli.write_report

    def read_only_run_dir(analysis, out, **kw):  # the run directory refuses writes
        if Path(out).resolve().is_relative_to(run):
            raise PermissionError(13, "Permission denied")
        return real(analysis, out, **kw)

    monkeypatch.setattr(cli, "write_report", read_only_run_dir)
    monkeypatch.chdir(tmp_path)
    assert main([str(run), "--resamples", "9"]) == 0
    err = capsys.readouterr().err
    assert f"writing the report to '{tmp_path / 'myrun-report'}' instead" in err
    assert (tmp_path / "myrun-report" / "report.md").is_file()
