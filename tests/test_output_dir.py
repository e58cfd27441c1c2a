"""A driver that joins a Ray cluster refuses output paths that would not outlive the job."""

from __future__ import annotations

import pytest

from raysweep.config import ConfigError, load_config
from raysweep.run import check_output_location, joins_cluster, main

JOB_CWD = "/tmp/ray/session_2025-01-01_00-00-00_1/runtime_resources/working_dir_files/_ray_pkg_ab12"


def test_a_local_driver_may_write_anywhere():
    cfg = load_config(None, ["output_dir=runs/x"])
    assert joins_cluster(cfg, {}, "/home/me/raysweep") is None
    check_output_location(cfg, environ={}, cwd="/home/me/raysweep")


@pytest.mark.parametrize(
    ("overrides", "environ", "cwd", "why"),
    [
        (["ray.address=auto"], {}, "/home/me", "ray.address is 'auto'"),
        ([], {"RAY_ADDRESS": "127.0.0.1:6379"}, "/home/me", "RAY_ADDRESS is set"),
        ([], {"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"}, "/home/me", "RAY_JOB_CONFIG_JSON_ENV_VAR"),
        ([], {}, JOB_CWD, "inside a Ray session"),
    ],
)
def test_a_cluster_driver_refuses_a_relative_output_dir(overrides, environ, cwd, why):
    cfg = load_config(None, ["output_dir=runs/study", *overrides])
    with pytest.raises(ConfigError) as caught:
        check_output_location(cfg, environ=environ, cwd=cwd)
    message = str(caught.value)
    assert why in message
    assert "output_dir: 'runs/study' is relative" in message
    assert "allowed: an absolute path on persistent or shared storage" in message
    absolute = load_config(None, ["output_dir=/home/ray/runs/study", *overrides])
    check_output_location(absolute, environ=environ, cwd=cwd)


def test_relative_tune_storage_is_refused_too_and_uris_are_fine():
    env = {"RAY_ADDRESS": "auto"}
    cfg = load_config(None, ["output_dir=/shared/run", "ray.storage_path=tune"])
    with pytest.raises(ConfigError, match=r"ray.storage_path: 'tune' is relative"):
        check_output_location(cfg, environ=env, cwd="/x")
    ok = load_config(None, ["output_dir=/shared/run", "ray.storage_path=s3://bucket/tune"])
    check_output_location(ok, environ=env, cwd="/x")


def test_cli_exits_2_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens there: no Ray is joined
    monkeypatch.chdir(tmp_path)
    assert main(["--output", "rel/run", "--validate"]) == 2
    err = capsys.readouterr().err
    assert "error: relative output path in a driver that joins a Ray cluster" in err
    assert "'rel/run' is relative" in err and "RAY_ADDRESS is set" in err
    assert not (tmp_path / "rel").exists()
