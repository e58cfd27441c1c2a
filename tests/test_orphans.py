"""Processes a killed driver left running are stopped by the next driver of the same output."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil

from raysweep.orphans import PROCESSES_FILE, reap_orphans, record_ray_processes


def _entry(process: psutil.Process) -> dict:
    return {"pid": process.pid, "started": process.create_time(), "name": process.name()}


def test_the_next_driver_stops_what_a_dead_one_left(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    dead_entry = _entry(psutil.Process(dead.pid))
    dead.kill()  # the driver, SIGKILLed
    dead.wait()
    left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    entry = _entry(psutil.Process(left.pid))
    payload = {"driver": dead_entry, "processes": [entry]}
    (tmp_path / PROCESSES_FILE).write_text(json.dumps(payload))
    assert reap_orphans(tmp_path) == [f"{entry['name']} (pid {left.pid})"]
    assert left.wait(timeout=10) is not None
    assert not (tmp_path / PROCESSES_FILE).exists()


def test_a_live_driver_and_a_reused_pid_are_left_alone(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        time.sleep(0.1)
        assert record_ray_processes(tmp_path) >= 1  # this process is the live driver
        assert reap_orphans(tmp_path) == [] and child.poll() is None
        payload = json.loads((tmp_path / PROCESSES_FILE).read_text())
        payload["driver"]["pid"] = 999_999_999  # gone
        for entry in payload["processes"]:
            entry["started"] -= 1000  # a pid now held by another process
        (tmp_path / PROCESSES_FILE).write_text(json.dumps(payload))
        assert reap_orphans(tmp_path) == [] and child.poll() is None
    finally:
        child.kill()
        child.wait()
