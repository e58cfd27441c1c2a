"""The architecture matrix: what pruned before still prunes; the tiny hybrids build and run.

The expectation (``tests/pruning/data/architecture_matrix.json``) and its table
(``docs/architectures.md``) are regenerated with the command in
``tests/pruning/architecture_matrix.py``'s docstring.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
import torch

from tests.pruning import tiny_hybrids

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = Path(__file__).parent / "data" / "architecture_matrix.json"
DOCS = ROOT / "docs" / "architectures.md"
# Hybrids whose layers are all of one kind by design (pure SSMs; Falcon-H1 mixes inside a layer).
_UNIFORM = {"mamba", "mamba2", "falcon_h1"}


def _matrix() -> ModuleType:
    from tests.pruning import architecture_matrix

    return architecture_matrix


def _expected() -> dict:
    return json.loads(EXPECTED.read_text())


@pytest.mark.slow
def test_no_family_that_pruned_stops_pruning():
    expected = _expected()
    walked = _matrix().walk()
    before, now = expected["models"], walked["models"]
    regressions = []
    for model_type, row in sorted(before.items()):
        if row["class"] != "pruned" or model_type not in now:
            continue  # a type gone from this transformers is reported below, not failed
        new = now[model_type]
        if new["class"] != "pruned":
            regressions.append(f"{model_type}: {new['class']} ({new.get('reason', '')})")
        elif row.get("finite_after") and not new.get("finite_after"):
            regressions.append(f"{model_type}: pruned, but the logits are no longer finite")
    changes = [
        f"{t}: {before[t]['class'] if t in before else 'new'} -> {now[t]['class']}"
        for t in sorted(now)
        if t not in before or before[t]["class"] != now[t]["class"]
    ] + [
        f"{t}: not in transformers {walked['transformers']}" for t in sorted(set(before) - set(now))
    ]
    if changes:
        warnings.warn(
            f"architecture matrix changed ({len(changes)}): {'; '.join(changes)}. "
            f"Regenerate with: {expected['command']}",
            stacklevel=1,
        )
    assert not regressions, "families that pruned no longer do:\n" + "\n".join(regressions)


def test_docs_table_is_generated_from_the_committed_json():
    expected = _expected()
    counts = Counter(row["class"] for row in expected["models"].values())
    assert expected["counts"] == {c: counts.get(c, 0) for c in expected["counts"]}
    assert sum(expected["counts"].values()) == len(expected["models"])
    rendered = _matrix().render_markdown(expected)
    assert DOCS.read_text() == rendered, (
        f"docs/architectures.md differs from the committed JSON; regenerate with: "
        f"{expected['command']}"
    )


@pytest.mark.parametrize("arch", tiny_hybrids.ARCHS)
def test_tiny_hybrid_builds_and_runs_dense(arch):
    model = tiny_hybrids.build(arch)
    config = model.config
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert config.hidden_size <= 64 and config.vocab_size == tiny_hybrids.VOCAB
    assert 2 <= config.num_hidden_layers <= 4
    pattern = getattr(config, "layer_types", None) or getattr(config, "layers_block_type", None)
    if arch not in _UNIFORM:
        assert pattern is not None and len(set(pattern)) > 1, pattern
    ids = torch.randint(0, tiny_hybrids.VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (2, 16, tiny_hybrids.VOCAB)
    assert torch.isfinite(logits).all()


def test_tiny_hybrid_is_seeded():
    a, b = tiny_hybrids.build("qwen3_5_text", seed=3), tiny_hybrids.build("qwen3_5_text", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
