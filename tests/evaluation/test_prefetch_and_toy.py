from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raysweep.evaluation import get_suite, validate_suite
from raysweep.evaluation.__main__ import main, prefetch_once
from raysweep.toyworld.tasks import TOY_TASKS
from tests.evaluation.tiny_world import TinyWorld, tiny_suite


def test_prefetch_loads_every_leaf_task_once_per_node(world: TinyWorld, tmp_path: Path) -> None:
    suite = get_suite(tiny_suite(world.tasks_dir))
    first = prefetch_once(suite, perplexity=False, marker_dir=tmp_path, force=False)
    assert first["already_done"] is False
    assert first["tasks"] == [
        "rs_tiny_facts", "rs_tiny_common", "rs_tiny_sums", "rs_tiny_code_add", "rs_tiny_code_mul",
    ]  # fmt: skip
    again = prefetch_once(suite, perplexity=False, marker_dir=tmp_path, force=False)
    assert again["already_done"] is True and again["tasks"] == first["tasks"]


def test_prefetch_command_reads_the_suite_from_a_config(
    world: TinyWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tiny_suite(world.tasks_dir, name="from_config")
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({"evaluation": {"suite": suite, "perplexity": False}}))
    assert main(["--prefetch", "--config", str(config)]) == 0
    assert "suite 'from_config': prefetched: 5 task(s)" in capsys.readouterr().out
    assert main(["--prefetch", "--config", str(config)]) == 0
    assert "already prefetched on this node" in capsys.readouterr().out


def test_prefetch_command_rejects_unknown_suite(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--prefetch", "--suite", "tiny"])
    assert exit_info.value.code == 2
    assert (
        "error: unknown suite 'tiny'; built-in suites: study, fast, toy" in capsys.readouterr().err
    )


def test_toy_suite_mirrors_the_toy_task_table() -> None:
    toy = get_suite("toy")
    assert toy.task_names == tuple(t.name for t in TOY_TASKS)
    assert [(s.dimension, s.chance, s.metric, s.num_fewshot) for s in toy.tasks] == [
        (t.dimension, t.chance, t.metric, 0) for t in TOY_TASKS
    ]
    assert toy.perplexity_corpus == "toy" and Path(toy.include_path).is_dir()
    assert validate_suite(toy) == toy  # every toy task is in the toy include_path's index
