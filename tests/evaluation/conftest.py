from __future__ import annotations

import pytest
import torch

from tests.evaluation.tiny_world import TinyWorld, build_world


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    return build_world(tmp_path_factory.mktemp("tiny_world"))
