"""report.html as a person reads it.

Without a browser: the table of contents links every heading, the summary table and the dense
model's chance levels come first, then the overview figure, and no legend covers a figure's
data. With Debian's ``chromium`` (skipped, saying how to install it, where it is missing): the
report opens in headless Chromium, driven over the DevTools protocol through
``--remote-debugging-pipe`` (the standard library only: no websocket or Playwright package),
every image loads, every internal link resolves, nothing is logged as an error, and the top of
the page is saved to docs/report_top.png.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import io
import json
import os
import re
import select
import shutil
import signal
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import PIL.Image
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from analysis import figures, write_report
from analysis.markup import slug
from analysis.overview import dense_levels
from analysis.records import load_records
from analysis.writing import write_atomic
from tests.analysis.items_fake import FakeRun, draw
from tests.analysis.test_report import png_size

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "report_top.png"
VIEWPORT = (1600, 1000)  # wide enough for the contents to sit beside the page
N = 40  # items per task
ALIGNED = {"web_general": "general", "qa_commonsense": "commonsense", "code_py": "code",
           "math_word": "math"}  # fmt: skip
GROUPS = [("sparsegpt", 0.5), ("sparsegpt", 0.7), ("wanda", 0.5), ("wanda", 0.7)]


def _p(source: str | None, method: str, sparsity: float) -> dict[str, float]:
    """Probability of a right answer per dimension: an aligned source keeps its own dimension
    best, c4 is flat, the uniform mix sits between."""
    scale = (1.0 if sparsity == 0.5 else 0.75) + (0.05 if method == "sparsegpt" else 0.0)
    if source in ALIGNED:
        return {d: scale * (0.8 if d == ALIGNED[source] else 0.5) for d in ALIGNED.values()}
    return {d: scale * (0.62 if source == "c4" else 0.7) for d in ALIGNED.values()}


def build_run(root: Path) -> FakeRun:
    """4 groups (sparsegpt and wanda at 50% and 70%) x (4 dimension-aligned sources, c4 and
    the uniform mix over the aligned four) x 2 seeds, with per-item side files; each record
    gets an achieved sparsity a little under its target."""
    rng = np.random.default_rng(38)
    run = FakeRun(root, draw(rng, 0.85, N))
    uniform = {s: 0.25 for s in ALIGNED}
    for method, sparsity in GROUPS:
        for seed in range(2):
            for source in [*ALIGNED, "c4"]:
                run.add(draw(rng, _p(source, method, sparsity), N), mix_name=source,
                        seed=seed, method=method, sparsity=sparsity)  # fmt: skip
            run.add(draw(rng, _p(None, method, sparsity), N), mix_name="uniform", mix=uniform,
                    seed=seed, method=method, sparsity=sparsity)  # fmt: skip
    for record in run.records:
        record["achieved_sparsity"] = record["sparsity"] - 0.001 * (1 + record["seed"])
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in run.records))
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The run and its report, written from a relative path so that the page (which names the
    records file) is the same wherever the test runs."""
    base = tmp_path_factory.mktemp("browser")
    run = build_run(base / "run")
    here = Path.cwd()
    os.chdir(base)
    try:
        # Per-group figures for two groups keep the test short; the overview has all four.
        files = write_report(Path("run"), Path("run") / "report", n_resamples=49,
                             paired_resamples=200, workers=1, max_figure_groups=2)  # fmt: skip
    finally:
        os.chdir(here)
    files = dataclasses.replace(
        files,
        out_dir=base / files.out_dir,
        report_md=base / files.report_md,
        report_html=base / files.report_html,
        tables={name: base / path for name, path in files.tables.items()},
        figures=[base / path for path in files.figures],
    )
    return run, files, files.out_dir


def _mean(records: list[dict], quantity: str, **where) -> float:
    values = []
    for r in records:
        if all(r[k] == v for k, v in where.items()):
            values.append(r["total_retention"] if quantity == "total" else r["retention"][quantity])
    assert values
    return float(np.mean(values))


# --------------------------------------------------------------------------- without a browser


def test_contents_link_every_section(built):
    _, files, out = built
    md = files.report_md.read_text()
    headings = re.findall(r"^(#{2,4}) (.+)$", md, flags=re.M)
    contents = md.split("**Contents**", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"^( *)- \[(.+)\]\(#(.+)\)$", contents, flags=re.M)
    assert [text for _, text, _ in links] == [text for _, text in headings]
    anchors = [anchor for _, _, anchor in links]
    assert len(set(anchors)) == len(anchors)
    assert anchors[:3] == [
        "summary-the-best-single-source-per-dimension-and-the-uniform-mix",
        "dense-model-and-chance-levels",
        "overview-the-capability-trade-off",
    ]
    assert "group-sparsegpt--unstructured--50" in anchors  # GitHub's anchor of that heading
    assert slug("Group sparsegpt · unstructured · 50%") == "group-sparsegpt--unstructured--50"
    html = files.report_html.read_text()
    ids = re.findall(r'<h[2-4] id="([^"]+)"', html)
    assert ids == anchors  # the same anchors in report.html and report.md
    for name in ("correlations.csv", "mixes.csv", "retention.csv", "paired.csv"):
        assert f"[{name}]({name})" in md and (out / name).is_file()


def test_summary_and_overview_come_first(built):
    run, files, _ = built
    md = files.report_md.read_text()
    order = [md.index(h) for h in ("## Summary", "### Dense model and chance levels",
                                   "## Overview", "## Headlines", "## Group ", "## Notes")]  # fmt: skip
    assert order == sorted(order)
    # The first figure is the overview, drawn once for all four groups.
    first = re.search(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert first and first.group(1) == "figures/overview.png"
    width, height = png_size(files.out_dir / "figures" / "overview.png")
    assert width >= 1000 and height >= 600
    # Summary row of wanda 70%: the best single source per dimension and the uniform mix.
    records = run.records
    lines = md.splitlines()
    at = lines.index(next(x for x in lines if x.startswith("| wanda · unstructured · 70% |")))
    best, uniform = ([c.strip() for c in x.strip("|").split("|")] for x in lines[at : at + 2])
    achieved = np.mean([r["achieved_sparsity"] for r in records
                        if r["method"] == "wanda" and r["sparsity"] == 0.7])  # fmt: skip
    assert best[1:3] == [f"{100 * achieved:.1f}", "best single source"]
    assert uniform[:3] == ["", "", "uniform mix"]
    where = {"method": "wanda", "sparsity": 0.7}
    for k, dimension in enumerate(["general", "commonsense", "code", "math", "total"]):
        means = {s: _mean(records, dimension, mix_name=s, **where) for s in [*ALIGNED, "c4"]}
        top = max(means, key=means.get)
        assert best[3 + k] == f"{top} {100 * means[top]:.1f}"
        mix = _mean(records, dimension, mix_name="uniform", **where)
        assert uniform[3 + k] == f"{100 * mix:.1f}"
    # The dense model per dimension with its tasks' chance levels (the side files').
    arc, boolq = (float(np.mean(run.dense_values[t])) for t in ("t_arc", "t_boolq"))
    assert (f"| m | Commonsense | {(arc + boolq) / 2:.3f} | 0.375 | t_arc {arc:.3f} (0.25); "
            f"t_boolq {boolq:.3f} (0.5) |") in md  # fmt: skip
    assert f"| m | Code | {np.mean(run.dense_values['t_code']):.3f} | 0.000 | t_code " in md


def test_chance_is_solved_from_the_records_without_side_files(built, tmp_path):
    run, _, _ = built
    chance = {"general": 0.25, "commonsense": 0.375, "code": 0.0, "math": 0.25}
    lines = []
    for record in run.records[:6]:
        dense, pruned = record["dense_dimension_scores"], record["dimension_scores"]
        record = {**record, "retention_above_chance": {
            d: (pruned[d] - chance[d]) / (dense[d] - chance[d]) for d in chance}}  # fmt: skip
        lines.append(json.dumps(record) + "\n")
    (tmp_path / "records.jsonl").write_text("".join(lines))
    levels = dense_levels(load_records(tmp_path), {None: tmp_path}).set_index("dimension")
    for dimension, value in chance.items():
        assert levels.loc[dimension, "chance"] == pytest.approx(value, abs=1e-9)
        assert levels.loc[dimension, "tasks"] == []  # no side files: no task names


def _captured(monkeypatch) -> list:
    drawn: list = []
    monkeypatch.setattr(figures, "_save", lambda figure, path: drawn.append(figure) or path)
    return drawn


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_a_legend_of_21_entries_covers_no_data(monkeypatch, tmp_path):
    """20 sources and the uniform mix (the toy world's sweep): the legend lies below the
    panels, inside the figure, and overlaps no axes."""
    rows = [{"source": f"toy_source_{i:02d}", "sparsity": s, "retention.general": 0.9 - s / 2,
             "total_retention": 0.8 - s / 2} for i in range(20) for s in (0.5, 0.7)]  # fmt: skip
    mixes = pd.DataFrame({"entry": ["uniform mix"] * 2, "sparsity": [0.5, 0.7],
                          "retention.general": [0.7, 0.6], "total_retention": [0.6, 0.5]})  # fmt: skip
    drawn = _captured(monkeypatch)
    figures.retention_vs_sparsity(pd.DataFrame(rows), mixes, ["general"], "t", tmp_path / "f.png")
    (figure,) = drawn
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    (legend,) = figure.legends
    box = legend.get_window_extent(renderer)
    assert len(legend.get_texts()) == 21
    whole = figure.bbox
    assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0
    for axes in figure.axes:
        assert not _overlaps(box, axes.get_window_extent(renderer))
        assert not _overlaps(box, axes.get_tightbbox(renderer))  # tick labels included


# --------------------------------------------------------------------------- in a browser


@pytest.fixture
def chromium() -> str:
    """Debian's chromium; the test skips without it, except where RAYSWEEP_REQUIRE_BROWSER is
    set (.ci/run installs it and sets it, so that CI never skips this test silently)."""
    path = shutil.which("chromium")
    if path is None:
        message = "chromium is not installed: apt-get install chromium (Debian's package)"
        if os.environ.get("RAYSWEEP_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _high(fd: int) -> int:
    """The same pipe end on a descriptor above 4, so that moving it to 3 or 4 in the browser
    never meets itself."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class DevTools:
    """Chromium headless, spoken to over ``--remote-debugging-pipe``: JSON messages ending in
    NUL, the browser reading descriptor 3 and writing descriptor 4."""

    def __init__(self, executable: str, profile: Path, log: Path):
        to_browser, self._send = (_high(fd) for fd in os.pipe())
        self._receive, from_browser = (_high(fd) for fd in os.pipe())
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        args = [executable, "--headless", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-pipe", f"--user-data-dir={profile}", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-sync",
                "--disable-background-networking", "--disable-component-update",
                "--mute-audio", "--hide-scrollbars", "--force-color-profile=srgb",
                "about:blank"]  # fmt: skip
        self.pid = os.posix_spawn(executable, args, os.environ, setsid=True, file_actions=[
            (os.POSIX_SPAWN_DUP2, to_browser, 3), (os.POSIX_SPAWN_DUP2, from_browser, 4),
            (os.POSIX_SPAWN_DUP2, log_fd, 1), (os.POSIX_SPAWN_DUP2, log_fd, 2),
        ])  # fmt: skip
        for fd in (to_browser, from_browser, log_fd):
            os.close(fd)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._receive], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._receive, 1 << 20)
            if not chunk:
                raise ConnectionError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 15.0) -> dict:  # fmt: skip
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._send, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        for seen in self.events:
            if seen.get("method") == event:
                return seen
        while True:
            message = self._read(deadline)
            self.events.append(message)
            if message.get("method") == event:
                return message

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, ConnectionError):
            self.call("Browser.close", timeout=5)
        deadline, exited = time.monotonic() + 5, False
        while not exited and time.monotonic() < deadline:
            exited = os.waitpid(self.pid, os.WNOHANG) != (0, 0)
            time.sleep(0 if exited else 0.05)
        # Whatever is left of the browser's own process group (it was started as its leader).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        if not exited:
            os.waitpid(self.pid, 0)
        os.close(self._send)
        os.close(self._receive)


_CHECK = """(async () => {
  const images = [...document.images];
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  const hrefs = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
  return {
    images: images.map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]),
    anchors: hrefs.filter(h => h.startsWith('#'))
                  .map(h => [h, document.getElementById(decodeURIComponent(h.slice(1))) !== null]),
    files: hrefs.filter(h => !h.startsWith('#')),
    headings: [...document.querySelectorAll('h2, h3, h4')].filter(h => !h.closest('nav'))
                                                          .map(h => h.id),
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    contentsBeside: getComputedStyle(document.getElementById('contents')).position,
  };
})()"""


def _errors(events: list[dict]) -> list[str]:
    """Console errors, uncaught exceptions and failed loads among the page's events."""
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            thrown = details.get("exception", {}).get("description", "")
            out.append(f"{details.get('text', 'exception')} {thrown}".strip())
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"{params['entry'].get('source')}: {params['entry'].get('text')}")
    return out


def _small_png(png: bytes) -> bytes:
    """The screenshot in 256 colours (text and flat tables lose nothing visible): a third of
    the size, for the docs."""
    with PIL.Image.open(io.BytesIO(png)) as image:
        small = image.convert("RGB").quantize(256, dither=PIL.Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def test_the_report_renders_in_chromium(chromium, built, tmp_path):
    _, files, out = built
    browser = DevTools(chromium, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable", session=session)
        width, height = VIEWPORT
        browser.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                     "deviceScaleFactor": 1, "mobile": False}, session=session)  # fmt: skip
        browser.events.clear()
        browser.call("Page.navigate", {"url": files.report_html.resolve().as_uri()},
                     session=session)  # fmt: skip
        browser.wait_for("Page.loadEventFired")
        result = browser.call("Runtime.evaluate", {"expression": _CHECK, "awaitPromise": True,
                              "returnByValue": True}, session=session)["result"]["value"]  # fmt: skip
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)
        errors = _errors(browser.events)
    finally:
        browser.close()
    images = result["images"]
    assert len(images) == len(files.figures) >= 10
    assert images[0][0].startswith("Overview")
    broken = [alt for alt, complete, w, h in images if not (complete and w > 0 and h > 0)]
    assert broken == []
    assert result["anchors"] and all(found for _, found in result["anchors"]), result["anchors"]
    linked = {h[1:] for h, _ in result["anchors"]}
    assert set(result["headings"]) <= linked  # the contents reach every section
    assert result["files"], "the report links its tables"
    for href in result["files"]:
        assert "://" not in href and (out / unquote(href)).is_file(), href
    assert errors == []
    assert result["overflow"] <= 0  # wide tables scroll in their own box, not the page
    assert result["contentsBeside"] == "fixed"
    png = _small_png(base64.b64decode(shot["data"]))
    assert len(png) < 300_000
    if not SCREENSHOT.is_file() or SCREENSHOT.read_bytes() != png:
        write_atomic(SCREENSHOT, lambda handle: handle.write(png), binary=True)
        SCREENSHOT.chmod(0o644)
    assert png_size(SCREENSHOT) == VIEWPORT
