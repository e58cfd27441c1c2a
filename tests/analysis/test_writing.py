"""Report files are written atomically: a full disk leaves no truncated file, and the run fails."""

from __future__ import annotations

import errno

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from analysis import figures  # noqa: E402
from analysis.writing import write_text_atomic  # noqa: E402


def _full_disk_after(limit: int):
    """A write that stores ``limit`` bytes, then fails as a full disk does."""

    def write(handle, data):
        handle.write(data[:limit])
        raise OSError(errno.ENOSPC, "No space left on device", handle.name)

    return write


def test_a_figure_on_a_full_disk_leaves_no_file(tmp_path, monkeypatch):
    figure = plt.figure()
    target = tmp_path / "figures" / "f.png"

    def savefig(handle, **kwargs):
        _full_disk_after(100)(handle, b"\x89PNG" + b"0" * 1000)

    monkeypatch.setattr(figure, "savefig", savefig)
    with pytest.raises(OSError, match="No space left"):
        figures._save(figure, target)
    assert list(target.parent.iterdir()) == []  # neither a truncated PNG nor a temporary file
    plt.close(figure)


def test_a_failed_rewrite_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    write_text_atomic(target, "old report\n")
    import analysis.writing as writing

    real = writing.write_atomic

    def failing(path, write, *, binary=False):
        return real(path, lambda h: _full_disk_after(3)(h, "new report\n"), binary=binary)

    monkeypatch.setattr(writing, "write_atomic", failing)
    with pytest.raises(OSError):
        writing.write_text_atomic(target, "new report\n")
    assert target.read_text() == "old report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_report_that_cannot_be_written_fails_the_run(tmp_path, monkeypatch, capsys):
    import analysis
    from raysweep import run

    def full(out):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "report" / "x.png"))

    monkeypatch.setattr(analysis, "write_report", full)
    assert run._report(tmp_path) is False
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"[raysweep] analysis report failed: cannot write {tmp_path}/report/x.png: "
                   "No space left on device"]  # fmt: skip
