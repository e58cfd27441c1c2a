"""The dense model's pristine copy exists only where a worker runs several trials."""

from __future__ import annotations

import torch

from raysweep import models
from raysweep.config import ModelConfig, ResourcesConfig
from raysweep.models import load_dense, reuses_actors

CPU = torch.device("cpu")


def _zero_first_weight(model: torch.nn.Module) -> str:
    name, weight = next((n, p) for n, p in model.named_parameters() if p.dim() == 2)
    with torch.no_grad():
        weight.zero_()
    return name


def test_actors_are_reused_only_without_gpus():
    assert reuses_actors(ResourcesConfig(cpu=2, gpu=0))
    assert not reuses_actors(ResourcesConfig(cpu=2, gpu=1))
    assert not reuses_actors(ResourcesConfig(gpu=0.5))


def test_gpu_style_trial_keeps_no_copy_and_reloads_from_disk():
    models._CACHE.clear()
    spec = ModelConfig()
    first = load_dense(spec, CPU, keep_pristine=reuses_actors(ResourcesConfig(gpu=1)))
    assert first.pristine is None and not models._CACHE
    name = _zero_first_weight(first.model)
    second = load_dense(spec, CPU, keep_pristine=False)
    assert second.model is not first.model  # read from disk again
    assert second.model.get_parameter(name).abs().sum() > 0


def test_reused_worker_restores_the_dense_weights_in_place():
    models._CACHE.clear()
    spec = ModelConfig()
    first = load_dense(spec, CPU, keep_pristine=True)
    assert first.pristine is not None
    dense = {k: v.clone() for k, v in first.model.state_dict().items()}
    name = _zero_first_weight(first.model)
    assert first.pristine[name].abs().sum() > 0  # the copy is not a view of the weights
    second = load_dense(spec, CPU, keep_pristine=True)
    assert second is first  # no disk read
    for key, value in second.model.state_dict().items():
        assert torch.equal(value, dense[key]), key
    models._CACHE.clear()
