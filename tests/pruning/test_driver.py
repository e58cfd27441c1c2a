"""The layer driver on hand-written models: tuple-returning layers, unchained layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from raysweep.pruning import prune_model

torch.set_num_threads(1)


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.up = nn.Linear(width, 2 * width)
        self.down = nn.Linear(2 * width, width)

    def forward(self, hidden: torch.Tensor, scale: float = 1.0) -> tuple[torch.Tensor, None]:
        return hidden + scale * self.down(torch.relu(self.up(hidden))), None


class _TupleModel(nn.Module):
    """Old-style model: layers return tuples, the model reads ``output[0]``."""

    def __init__(self, vocab: int = 50, width: int = 16, layers: int = 3, between: float = 1.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(_Block(width) for _ in range(layers))
        self.head = nn.Linear(width, vocab)
        self.between = between

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> torch.Tensor:
        hidden = self.embed(input_ids)
        for block in self.blocks:
            hidden = block(hidden, scale=0.5)[0]
            if self.between != 1.0:
                hidden = hidden * self.between
        return self.head(hidden)


def _reference_wanda(model: _TupleModel, calib: torch.Tensor) -> None:
    for block in model.blocks:
        sq = {}
        handles = [
            m.register_forward_hook(
                lambda m, i, o, n=n, sq=sq: sq.__setitem__(n, (i[0].double() ** 2).sum((0, 1)))
            )
            for n, m in block.named_modules()
            if isinstance(m, nn.Linear)
        ]
        with torch.no_grad():
            model(calib)
        for h in handles:
            h.remove()
        for name, module in block.named_modules():
            if isinstance(module, nn.Linear):
                scores = module.weight.double().abs() * sq[name].sqrt()
                order = torch.sort(scores, dim=1, stable=True).indices[:, : scores.shape[1] // 2]
                module.weight.data.scatter_(1, order, 0.0)


def test_tuple_returning_layers_are_replayed_with_their_arguments():
    torch.manual_seed(0)
    ours = _TupleModel()
    reference = _TupleModel()
    reference.load_state_dict(ours.state_dict())
    calib = torch.randint(0, 50, (5, 7), generator=torch.Generator().manual_seed(1))
    report = prune_model(ours, calib, "wanda", 0.5, batch_size=2)
    _reference_wanda(reference, calib)
    assert report.achieved_sparsity == 0.5
    for (name, a), b in zip(ours.named_parameters(), reference.parameters(), strict=True):
        assert torch.equal(a == 0, b == 0), name
    assert torch.equal(ours.head.weight, reference.head.weight)


def test_layers_not_chained_directly_are_rejected():
    model = _TupleModel(between=2.0)
    with pytest.raises(ValueError, match="do not feed each other's outputs directly"):
        prune_model(model, torch.zeros(2, 4, dtype=torch.long), "wanda", 0.5)
