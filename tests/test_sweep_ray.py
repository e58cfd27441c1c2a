"""The sweep on real Ray Tune over the toy world: records, resume, faults, kill, multi-node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from raysweep.config import SweepConfig
from raysweep.planning import trial_points
from raysweep.records import read_records
from tests.side_files import assert_side_files
from tests.toy_sweep import toy_sweep_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _run(cfg: SweepConfig) -> int:
    from raysweep.run import run_sweep

    return run_sweep(cfg, trial_points(cfg), mode="grid")


def test_sweep_writes_one_ok_record_per_point_and_resumes(ray_local, tmp_path):
    cfg = toy_sweep_config(tmp_path / "run")
    assert _run(cfg) == 0
    recs = read_records(tmp_path / "run" / "records.jsonl").records
    points = trial_points(cfg)
    assert sorted(r.trial_id for r in recs) == sorted(p.trial_id for p in points)
    assert all(r.status == "ok" for r in recs)
    r = recs[0]
    assert r.achieved_sparsity == pytest.approx(0.7, abs=0.01)
    assert set(r.retention) == {"general", "commonsense", "code", "math"}
    assert r.node_id and r.timings["eval_s"] > 0 and r.dense_cache_key
    assert r.calib_metrics["ngram4_aggregation"] >= 0 and r.calib_metrics["perplexity"] > 1
    assert (tmp_path / "run" / "config.yaml").exists()
    dense_files = list((tmp_path / "run" / "dense").iterdir())
    assert [f.name for f in dense_files] == [f"{r.dense_cache_key}.json"]
    # Beside the records: each trial's and the dense model's per-item scores.
    assert_side_files(tmp_path / "run", recs)
    # rerun: nothing new runs and nothing is duplicated
    before = (tmp_path / "run" / "records.jsonl").read_text()
    side = {p.name: p.read_bytes() for p in (tmp_path / "run" / "items").iterdir()}
    assert _run(cfg) == 0
    assert (tmp_path / "run" / "records.jsonl").read_text() == before
    assert {p.name: p.read_bytes() for p in (tmp_path / "run" / "items").iterdir()} == side


def test_deterministic_failure_is_recorded_once_naming_the_stage(ray_local, tmp_path):
    missing = tmp_path / "nope.jsonl"
    cfg = toy_sweep_config(
        tmp_path / "run",
        calibration__sources=["toy_general_prose", f"file:{missing}"],
    )
    assert _run(cfg) == 1
    recs = read_records(tmp_path / "run" / "records.jsonl").records
    by_mix = {r.mix_name: r for r in recs}
    assert by_mix["toy_general_prose"].status == "ok"
    bad = by_mix[f"file:{missing}"]
    assert bad.status == "error" and "nope.jsonl" in (bad.error or "")
    # What failed, where, first; no retry of a fault that recurs on every attempt.
    assert bad.error.startswith(f"calibrating of {bad.method}-")
    assert "nope.jsonl" in bad.error.splitlines()[0]
    assert bad.attempts == 1
    assert len(recs) == 2
    assert_side_files(tmp_path / "run", recs)  # the ok trial's only


def _kill_session(tmpdir: Path) -> None:
    """SIGKILL every process of the driver's private Ray (found by its unique temp dir)."""
    import psutil

    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            blob = " ".join(proc.info["cmdline"] or []) + str(
                (proc.info["environ"] or {}).get("RAY_TMPDIR")
            )
            if str(tmpdir) in blob and proc.pid != os.getpid():
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def _child_driver(tmp_path: Path, out: Path) -> tuple[list[str], dict[str, str], Path]:
    """The command, environment and private Ray temp dir of a driver run as a child process:
    it must neither join nor take down the test's own Ray."""
    args = [
        sys.executable,
        "-m",
        "raysweep.run",
        "--config",
        str(_write_cfg(tmp_path, out)),
    ]
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs-child-", dir="/tmp"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    return args, env, ray_tmp


def test_killed_driver_resumes_without_loss_or_duplicates(tmp_path):
    out = tmp_path / "run"
    args, env, ray_tmp = _child_driver(tmp_path, out)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    records = out / "records.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (records.exists() and records.read_text().strip()):
        time.sleep(0.5)
    assert records.exists()
    os.kill(proc.pid, signal.SIGKILL)  # the driver alone: its Ray is left running
    proc.wait()
    import psutil

    left = json.loads((out / "ray_processes.json").read_text())["processes"]
    alive = [e["pid"] for e in left if psutil.pid_exists(e["pid"])]
    assert alive, "the killed driver left no Ray process to reap"
    done_before = len(read_records(records, warn=False).records)
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=400)
    _kill_session(ray_tmp)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Ray process(es) a dead driver of this output left running" in second.stdout
    assert not [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert "already done" in second.stdout
    recs = read_records(records, warn=False).records
    ids = [r.trial_id for r in recs]
    assert len(ids) == len(set(ids)) == 4
    assert done_before >= 1
    assert_side_files(out, recs)  # none lost to the kill, none twice


def _session_processes(tmpdir: Path) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            blob = " ".join(proc.info["cmdline"] or []) + str(
                (proc.info["environ"] or {}).get("RAY_TMPDIR")
            )
            if str(tmpdir) in blob and proc.pid != os.getpid():
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_says_how_to_resume_and_leaves_no_ray_behind(tmp_path, sig):
    args, env, ray_tmp = _child_driver(tmp_path, tmp_path / "run")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)  # fmt: skip
    lines = []
    for line in proc.stdout:  # wait until the grid is under way
        lines.append(line)
        if "[raysweep] grid:" in line:
            break
    time.sleep(3)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # what Ctrl-C in a terminal does: the whole foreground group
    else:
        os.kill(proc.pid, sig)  # what `kill` or a scheduler does: the driver alone
    rest, _ = proc.communicate(timeout=120)
    deadline = time.monotonic() + 30
    while _session_processes(ray_tmp) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _session_processes(ray_tmp)
    _kill_session(ray_tmp)
    assert not left, f"{len(left)} process(es) of the run's Ray outlived the driver"
    text = "".join(lines) + rest
    assert proc.returncode == 130, text[-3000:]
    assert "rerun the same command to resume" in text
    assert "Tuner.restore" not in text


def _write_cfg(tmp_path: Path, out: Path) -> Path:
    cfg = toy_sweep_config(out, calibration__sources=["toy_general_prose", "toy_math_word", "toy_code_qa",
                                          "toy_commonsense_qa"], ray__num_cpus=2)  # fmt: skip
    path = tmp_path / "sweep.yaml"
    path.write_text(cfg.to_yaml())
    return path


def test_multi_node_trials_land_on_different_gpu_nodes(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, num_gpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                           if k.startswith(("HF_", "RAYSWEEP_", "TRANSFORMERS_"))}})  # fmt: skip
        cfg = toy_sweep_config(tmp_path / "run", resources__gpu=1, resources__cpu=1)
        assert _run(cfg) == 0
        recs = read_records(tmp_path / "run" / "records.jsonl").records
        assert len(recs) == 2 and all(r.status == "ok" for r in recs)
        gpu_nodes = {n["NodeID"] for n in ray.nodes() if n["Resources"].get("GPU")}
        assert {r.node_id for r in recs} == gpu_nodes
        assert all(r.device == "cpu" for r in recs)  # a GPU in Ray's books, no CUDA here
    finally:
        ray.shutdown()
        cluster.shutdown()
