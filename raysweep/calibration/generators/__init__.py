"""Calibration text written by the model being pruned: ``self_cal``, ``sgs`` and ``igsp``.

Each generator is a frozen dataclass whose fields are its knobs (defaults in code, overridable per
source from YAML through ``source_from_spec``, e.g. ``{generator: igsp, pool_factor: 4}``). Calling
it as ``generator(model=, tokenizer=, count=, seqlen=, seed=)`` returns a LongTensor
``(count, seqlen)``.

Shared conventions:

- **Windows** are exactly ``seqlen`` tokens: the start token (BOS, or EOS with ``start_token:
  eos`` for models trained on EOS-joined text without BOS), then any prompt tokens (an SGS prefix or
  an IGSP cue), then sampled tokens. Nothing is padded.
- **EOS** (``eos: continue``, the default): when the model writes EOS, sampling simply goes on, so
  the window continues with a new document after the separator, as packed corpus windows do.
  ``eos: suppress`` forbids EOS instead, so each window is one long document. The pad token is never
  sampled.
- **Determinism**: window ``i`` of a draw is sampled with uniforms from its own
  ``torch.Generator`` seeded by ``(seed, generator, part, i)`` (inverse-CDF sampling), so it does not
  depend on the batch size or the device (up to floating-point differences in the logits).
- **Sampling** order per step: repetition penalty, banned tokens, temperature, top-k, top-p.
  Temperature follows Self-Cal's linear schedule when ``temperature_initial`` is set:
  ``t_i = t_initial + (i / n) (t_final - t_initial)`` for the ``i``-th sampled token, ``i <= n =
  schedule_tokens``, then ``t_final = temperature``.
- Generation runs batched on the model's device under ``torch.no_grad`` in eval mode, with a progress
  bar (and a log line) for long runs.

Modules: ``base`` (the shared knobs, start and banned tokens, seeds), ``self_cal``, ``sgs`` and
``igsp`` (one generator each), ``sampler`` (choosing the next token), ``decoding`` (running the
model with a KV cache, window perplexities) and ``progress``. Importing this package, or building a
generator from its knobs, loads no torch: ``sampler`` and ``decoding`` are imported when a draw runs.
"""

from .base import Sampling
from .igsp import DEFAULT_CUES, IGSP, IGSPResult
from .self_cal import SelfCal
from .sgs import SGS, SGSResult, default_prefix_source

GENERATORS: dict[str, type[Sampling]] = {"self_cal": SelfCal, "sgs": SGS, "igsp": IGSP}

__all__ = [
    "DEFAULT_CUES",
    "GENERATORS",
    "IGSP",
    "SGS",
    "IGSPResult",
    "SGSResult",
    "Sampling",
    "SelfCal",
    "default_prefix_source",
]
