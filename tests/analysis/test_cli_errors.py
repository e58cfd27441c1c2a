"""``python -m analysis`` reports what it cannot do, with exit 2 and no traceback."""

from __future__ import annotations

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
