"""Plug-in worlds: the core reaches the toy world (and any other) only through the
``raysweep.worlds`` entry point group, and imports no module of raysweep/toyworld."""

from __future__ import annotations

import ast
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from raysweep import worlds
from raysweep.config import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
TOY = EntryPoint("toy", "raysweep.toyworld.plugin:world", worlds.GROUP)
FAKE = EntryPoint("fake", "tests.worlds_fake:world", worlds.GROUP)


def _names_toyworld(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        hit = [a.name for a in node.names if a.name.startswith("raysweep.toyworld")]
        return hit[0] if hit else None
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        if module.startswith("raysweep.toyworld") or (
            module == "raysweep" and any(a.name == "toyworld" for a in node.names)
        ):
            return module
        if node.level and module.startswith("toyworld"):
            return module
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        value = node.value
        if value == "raysweep.toyworld" or value.startswith("raysweep.toyworld."):
            return value  # a module name for importlib
    return None


def test_no_module_outside_toyworld_imports_it():
    found = []
    for path in sorted((ROOT / "raysweep").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("raysweep", "toyworld"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if name := _names_toyworld(node):
                found.append(f"{rel}:{node.lineno}: {name}")
    assert found == []


def test_pyproject_registers_the_toy_world():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"][worlds.GROUP] == {"toy": TOY.value}


def test_the_toy_world_is_found_from_this_checkout():
    # Through the installed metadata after `pip install -e .`, else through this pyproject.toml.
    assert "toy" in {ep.name for ep in worlds.entry_points()}
    toy = {w.name: w for w in worlds.registry().worlds}["toy"]
    assert set(toy.models) == {"raysweep-toy", "raysweep-toy-moe"} and "toy" in toy.suites


@pytest.fixture
def with_fake_world(monkeypatch):
    monkeypatch.setattr(worlds, "_REGISTRY", worlds.load([TOY, FAKE]))


def test_a_third_party_world_adds_models_sources_suites_and_corpora(with_fake_world):
    from raysweep.calibration.generators import default_prefix_source
    from raysweep.calibration.text_sources import TextSourceTable, lookup
    from raysweep.evaluation import SUITES, get_suite, heldout_texts
    from raysweep.models import resolve_model_path

    assert resolve_model_path(ModelConfig(path="fake-model")) == "/models/fake-model"
    assert resolve_model_path(ModelConfig(path="org/other")) == "org/other"
    source = lookup("fake_text", TextSourceTable())
    assert (source.kind, source.offline, next(source.texts(3))) == (
        "builtin", True, "seed 3: the fake world's only document")  # fmt: skip
    assert list(SUITES) == ["study", "fast", "toy", "toy_generative", "fake"]
    assert get_suite("fake").task_names == ("arc_easy",)
    assert heldout_texts("fake") == ["held out"]
    model = type("M", (), {"config": type("C", (), {"name_or_path": "/x/fake-model"})()})()
    assert default_prefix_source(model) == "fake_text"


def test_a_broken_world_is_reported_and_left_out(monkeypatch):
    broken = EntryPoint("broken", "raysweep_no_such_module:world", worlds.GROUP)
    wrong = EntryPoint("wrong", "tests.worlds_fake:_Source", worlds.GROUP)
    monkeypatch.setattr(worlds, "_REGISTRY", worlds.load([broken, TOY, wrong]))
    from raysweep.evaluation import get_suite

    assert [w.name for w in worlds.registry().worlds] == ["toy"]
    assert len(worlds.registry().errors) == 2
    assert get_suite("toy").name == "toy"
    with pytest.raises(ValueError, match=r"unknown suite 'nope'.*world 'broken'"):
        get_suite("nope")
