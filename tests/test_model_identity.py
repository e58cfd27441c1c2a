"""One model identity for the dense baseline and statistics caches: a local directory by its
weights' sampled content digest, a Hub id by its revision."""

from __future__ import annotations

import os

from raysweep.config import EvaluationConfig, ModelConfig
from raysweep.dense import dense_key
from raysweep.models import model_spec_key, weights_digest
from tests.tiny import tiny_llama


def _rewrite(path, data: bytes) -> None:
    """New content, and an mtime a second later (a coarse clock could give the same one)."""
    before = path.stat().st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(before, before + 1_000_000_000))


def test_a_checkpoint_replaced_by_another_of_the_same_size_is_another_model(tmp_path):
    spec = ModelConfig(path=str(tmp_path), device="cpu")
    evaluation = EvaluationConfig(suite="toy", limit=4)
    tiny_llama(64, seed=0).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    size = weights.stat().st_size
    before = (model_spec_key(spec), dense_key(spec, evaluation))
    assert before == (model_spec_key(spec), dense_key(spec, evaluation))
    other = tmp_path / "other"
    tiny_llama(64, seed=1).save_pretrained(other)
    _rewrite(weights, (other / "model.safetensors").read_bytes())
    assert weights.stat().st_size == size
    after = (model_spec_key(spec), dense_key(spec, evaluation))
    assert before[0] != after[0] and before[1] != after[1]


def test_the_digest_samples_a_large_file_and_sees_a_change_in_it(tmp_path):
    big = tmp_path / "model.safetensors"
    big.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: sampled, not read whole
    first = weights_digest([big])
    data = bytearray(big.read_bytes())
    data[len(data) // 2 : len(data) // 2 + (1 << 20)] = b"\x01" * (1 << 20)  # one tensor's worth
    _rewrite(big, bytes(data))
    assert weights_digest([big]) != first


def test_a_hub_id_keeps_its_revision_as_its_identity():
    spec = ModelConfig(path="org/some-model", revision="0123abc", dtype="bfloat16")
    assert model_spec_key(spec) == "org/some-model@0123abc:bfloat16[]"
