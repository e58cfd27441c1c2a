"""Test-wide guards: offline Hugging Face, private caches, no outbound network, GPU tier skips."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

_SESSION_TMP: Path | None = None


def _is_loopback(host: object) -> bool:
    if host in (None, "", "localhost"):
        return True
    try:
        addr = ipaddress.ip_address(str(host))
    except ValueError:
        # A hostname: resolve it without connecting; anything not loopback is refused.
        try:
            infos = socket.getaddrinfo(str(host), None)
        except OSError:
            return False
        return all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)
    # Ray binds and connects to the node's own address as well as 127.0.0.1.
    return addr.is_loopback or addr.is_unspecified or str(addr) in _local_addresses()


_LOCAL: set[str] | None = None


def _local_addresses() -> set[str]:
    global _LOCAL
    if _LOCAL is None:
        _LOCAL = {"127.0.0.1", "::1"}
        try:
            for info in socket.getaddrinfo(socket.gethostname(), None):
                _LOCAL.add(info[4][0])
        except OSError:
            pass
    return _LOCAL


def pytest_configure(config: pytest.Config) -> None:
    global _SESSION_TMP
    import tempfile

    _SESSION_TMP = Path(tempfile.mkdtemp(prefix="raysweep-tests-"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(_SESSION_TMP / "hf_home")
    os.environ.setdefault("RAYSWEEP_CACHE_DIR", str(_SESSION_TMP / "raysweep_cache"))
    os.environ["RAY_TMPDIR"] = str(_SESSION_TMP / "ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("MPLBACKEND", "Agg")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded(real):
    def connect(self, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if not _is_loopback(host):
                raise RuntimeError(f"test tried to open a network connection to {address!r}")
        return real(self, address)

    return connect


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded(_real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded(_real_connect_ex))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture
def ray_local():
    """A real local Ray with 2 CPUs (started once, reused; tests that need another shut it down)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {k: os.environ[k] for k in _PASS if k in os.environ}},
        )
    yield ray


_PASS = ("HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
         "RAYSWEEP_CACHE_DIR", "TOKENIZERS_PARALLELISM")  # fmt: skip
