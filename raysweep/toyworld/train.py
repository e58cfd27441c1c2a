"""Train the toy models: a byte-level BPE tokenizer, a tiny LlamaForCausalLM and a tiny MoE.

``python -m raysweep.toyworld.train`` rebuilds ``raysweep/toyworld/assets/raysweep-toy`` (the
committed files) in about 21 minutes on two CPU threads. ``--moe`` rebuilds
``assets/raysweep-toy-moe``: a Qwen3MoeForCausalLM (routed experts fused into 3-D parameters,
trained with the router's load-balancing loss) on the same text stream, reading the dense model's
tokenizer so that both models see the same token ids. The token stream, batch order and
initialisation are fixed by the seed; CPU kernels with the same thread count give the same weights.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
)

from raysweep.toyworld.model import (
    DEFAULT_MODEL_DIR,
    DEFAULT_MOE_MODEL_DIR,
    TOY_MODEL_NAME,
    TOY_MOE_MODEL_NAME,
    toy_model_dir,
)
from raysweep.toyworld.sources import training_texts

BOS, EOS, PAD = "<s>", "</s>", "<pad>"


@dataclass(frozen=True)
class MoeSettings:
    """The routed-expert part of the toy MoE; every decoder layer's MLP is an MoE block."""

    num_experts: int = 8
    top_k: int = 2
    expert_intermediate_size: int = 128
    router_aux_loss_coef: float = 0.01


@dataclass(frozen=True)
class TrainSettings:
    seed: int = 1234
    vocab_size: int = 2048
    tokenizer_docs: int = 6000
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 6
    num_heads: int = 4
    seqlen: int = 128
    batch_size: int = 32
    steps: int = 4000
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.05
    # CPU kernels give the same weights for the same thread count: the committed model's.
    threads: int = 2
    # Spread (log-normal sigma) of the per-channel activation scales given to the trained dense
    # model by a function-preserving rescaling (see ``add_outlier_features``); 0 keeps it as trained.
    outlier_sigma: float = 0.7
    # None: the dense Llama and a freshly trained tokenizer; else an MoE reading the dense
    # model's tokenizer (same token ids, so both models share sources, tasks and perplexity sets).
    moe: MoeSettings | None = None


def moe_settings(**overrides: int | float) -> TrainSettings:
    """The settings that produced ``assets/raysweep-toy-moe``: 4 layers (the dense-MLP width is
    unused, every layer's MLP being an MoE block)."""
    defaults: dict = {
        "num_layers": 4,
        "intermediate_size": 512,
        "threads": 1,
        "steps": 800,
        "outlier_sigma": 0.0,
        "moe": MoeSettings(),
    }
    return TrainSettings(**{**defaults, **overrides})


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE; digits are always single tokens so that arithmetic is learnable."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, model_max_length=512
    )


def token_stream(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> torch.Tensor:
    """Documents tokenised without specials and joined by EOS: (n_tokens,) int64."""
    ids: list[int] = []
    for encoding in tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False):
        ids.extend(encoding.ids)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def build_model(settings: TrainSettings, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    if settings.moe is not None:
        return _build_moe_model(settings, settings.moe, tokenizer)
    config = LlamaConfig(
        **_shared_config(settings, tokenizer), intermediate_size=settings.intermediate_size
    )
    torch.manual_seed(settings.seed)
    return LlamaForCausalLM(config)


def _shared_config(settings: TrainSettings, tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """What the dense and the MoE toy models have in common: width, depth, heads, positions,
    tied embeddings and the tokenizer's special tokens."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": settings.hidden_size,
        "num_hidden_layers": settings.num_layers,
        "num_attention_heads": settings.num_heads,
        "num_key_value_heads": settings.num_heads,
        "max_position_embeddings": 512,
        "tie_word_embeddings": True,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _build_moe_model(
    settings: TrainSettings, moe: MoeSettings, tokenizer: PreTrainedTokenizerFast
) -> Qwen3MoeForCausalLM:
    config = Qwen3MoeConfig(
        **_shared_config(settings, tokenizer),
        intermediate_size=moe.expert_intermediate_size,  # unused: no dense-MLP layers
        moe_intermediate_size=moe.expert_intermediate_size,
        head_dim=settings.hidden_size // settings.num_heads,
        num_experts=moe.num_experts,
        num_experts_per_tok=moe.top_k,
        norm_topk_prob=True,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        router_aux_loss_coef=moe.router_aux_loss_coef,
    )
    torch.manual_seed(settings.seed)
    return Qwen3MoeForCausalLM(config)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _tokenizer(settings: TrainSettings, texts: list[str]) -> PreTrainedTokenizerFast:
    if settings.moe is None:
        return train_tokenizer(texts[: settings.tokenizer_docs], settings.vocab_size)
    return PreTrainedTokenizerFast.from_pretrained(ensure_toy_model())


def _save_tokenizer(
    settings: TrainSettings, tokenizer: PreTrainedTokenizerFast, output: Path
) -> None:
    if settings.moe is None:
        tokenizer.save_pretrained(output)
        return
    # The dense model's files byte for byte (a re-save would add loading-time keys).
    for name in _TOKENIZER_FILES:
        shutil.copyfile(ensure_toy_model() / name, output / name)


def _step_loss(model: PreTrainedModel, batch: torch.Tensor, settings: TrainSettings):
    """(loss to minimise, language-model loss, load-balancing loss or None)."""
    if settings.moe is None:
        loss = model(input_ids=batch, labels=batch).loss
        return loss, loss, None
    out = model(input_ids=batch, output_router_logits=True)
    lm_loss = model.loss_function(out.logits, batch, model.config.vocab_size)
    aux_loss = _balance_loss(out.router_logits, settings.moe)
    return lm_loss + settings.moe.router_aux_loss_coef * aux_loss, lm_loss, aux_loss


def _balance_loss(router_logits: tuple[torch.Tensor, ...], moe: MoeSettings) -> torch.Tensor:
    """Switch-Transformer load-balancing loss of each layer, averaged over layers.

    The model's own aux loss pools the (layer, expert) loads of all layers into one distribution
    per expert index, so one layer's unused expert can be offset by another layer's busy one; per
    layer, every expert of every block is kept in use. Equals top_k at a uniform load.
    """
    from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

    losses = [load_balancing_loss_func((g,), moe.num_experts, moe.top_k) for g in router_logits]
    return torch.stack(losses).mean()


@torch.no_grad()
def expert_load(model: PreTrainedModel, windows: torch.Tensor) -> list[list[float]]:
    """Share of routed (token, slot) pairs per expert, per layer, over ``windows``."""
    out = model(input_ids=windows, output_router_logits=True)
    k = model.config.num_experts_per_tok
    loads = []
    for logits in out.router_logits:  # (tokens, experts) per layer
        top = logits.topk(k, dim=-1).indices.flatten()
        counts = torch.bincount(top, minlength=logits.shape[-1]).double()
        loads.append([round(float(c), 4) for c in counts / counts.sum()])
    return loads


@torch.no_grad()
def add_outlier_features(model: LlamaForCausalLM, sigma: float, seed: int) -> None:
    """Give the model's linear inputs the heavy-tailed per-channel scales of real LLMs, in place.

    Trained LLMs carry a few input channels whose activations are orders of magnitude larger than
    the rest (Dettmers et al. 2022; Sun et al. 2024), which is why magnitude pruning, blind to
    activations, loses to Wanda and SparseGPT. A model this small trained this briefly has none,
    so each hidden channel j entering a decoder layer's attention or MLP gets a log-normal scale
    s_j, moved from the weights into the activations: the RMSNorm gain times s_j, column j of the
    projections reading it divided by s_j. The network computes the same function; Wanda's
    |W_ij| * ||X_j|| and SparseGPT's w^2 / [H^-1]_jj are unchanged (SparseGPT up to its damping,
    a share of the mean Hessian diagonal); only the weights' magnitudes change. Output rows are
    left alone: SparseGPT compares scores across the rows of a block, so scaling rows would bias
    it rather than model an activation outlier.
    """
    generator = torch.Generator().manual_seed(seed)

    def scales(n: int) -> torch.Tensor:
        return torch.exp(sigma * torch.randn(n, generator=generator, dtype=torch.float64)).float()

    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        pairs = (
            (layer.input_layernorm.weight, (attn.q_proj, attn.k_proj, attn.v_proj)),
            (layer.post_attention_layernorm.weight, (mlp.gate_proj, mlp.up_proj)),
        )
        for gain, consumers in pairs:
            s = scales(gain.numel())  # (hidden,)
            gain.mul_(s)
            for linear in consumers:
                linear.weight.div_(s[None, :])


def held_out_accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> dict:
    """In-process ``acc`` on every toy task (lm-eval semantics), by task name."""
    from raysweep.toyworld.mcscore import accuracy
    from raysweep.toyworld.tasks import TOY_TASKS, task_items

    return {t.name: round(accuracy(model, tokenizer, task_items(t.name)), 4) for t in TOY_TASKS}


def _lr_at(step: int, settings: TrainSettings) -> float:
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(settings: TrainSettings, output: Path, log_every: int = 50) -> dict[str, float]:
    """Train tokenizer and model, save both to ``output`` in Hugging Face format; return stats."""
    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    n_windows = settings.steps * settings.batch_size
    texts_needed = n_windows * settings.seqlen // 60 + settings.tokenizer_docs  # ~90 tokens/doc
    texts = list(itertools.islice(training_texts(settings.seed), texts_needed))
    tokenizer = _tokenizer(settings, texts)
    stream = token_stream(tokenizer, texts)
    n_windows = min(n_windows, stream.numel() // settings.seqlen)
    windows = stream[: n_windows * settings.seqlen].view(n_windows, settings.seqlen)
    generator = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(n_windows, generator=generator)
    model = build_model(settings, tokenizer)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.lr,
        betas=(0.9, 0.95),
    )
    prep_s = time.perf_counter() - started
    model.train()
    loss_value = lm_value = float("nan")
    aux_value: float | None = None
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, settings)
        idx = order[(step * settings.batch_size + torch.arange(settings.batch_size)) % n_windows]
        batch = windows[idx]  # (batch, seqlen)
        loss, lm_loss, aux_loss = _step_loss(model, batch, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value, lm_value = loss.item(), lm_loss.item()
        aux_value = None if aux_loss is None else aux_loss.item()
        if log_every and (step % log_every == 0 or step == settings.steps - 1):
            aux = "" if aux_value is None else f"  lm {lm_value:.4f}  aux {aux_value:.4f}"
            print(
                f"step {step:5d}  loss {loss_value:.4f}{aux}  "
                f"{time.perf_counter() - started:7.1f}s",
                flush=True,
            )
    model.eval()
    if settings.outlier_sigma > 0:
        add_outlier_features(model, settings.outlier_sigma, settings.seed)
    train_s = time.perf_counter() - started
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    _save_tokenizer(settings, tokenizer, output)
    stats: dict = {
        "train_s": round(train_s, 1),
        "prep_s": round(prep_s, 1),
        "final_loss": round(loss_value, 4),
        "tokens_seen": settings.steps * settings.batch_size * settings.seqlen,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    result: dict = {"settings": asdict(settings), "stats": stats}
    if settings.moe is not None:
        stats["final_lm_loss"] = round(lm_value, 4)
        stats["final_aux_loss"] = round(aux_value or 0.0, 4)
        # Routing of the last training batch: every expert of every layer gets a share.
        result["expert_load"] = expert_load(model, batch)
    result["held_out_accuracy"] = held_out_accuracy(model, tokenizer)
    (output / "training.json").write_text(json.dumps(result, indent=2) + "\n")
    return stats


def ensure_toy_model(name: str = TOY_MODEL_NAME) -> Path:
    """The Hugging Face directory of a toy model: ``raysweep-toy`` (LlamaForCausalLM) or
    ``raysweep-toy-moe`` (Qwen3MoeForCausalLM), with the tokenizer.

    The trained files ship with the package. If they are missing (a stripped install), the model
    is trained once into the raysweep cache directory (the MoE reads the dense model's tokenizer,
    so the dense model comes first).
    """
    target = toy_model_dir(name)
    if not (target / "model.safetensors").is_file():
        settings = moe_settings() if name == TOY_MOE_MODEL_NAME else TrainSettings()
        train(settings, target, log_every=0)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe", action="store_true", help="train the toy MoE (raysweep-toy-moe)")
    parser.add_argument("--output", type=Path, help="model directory (default: the committed one)")
    parser.add_argument(
        "--steps", type=int, help="optimizer steps (default: the committed model's)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: the committed model's; the weights depend on it)",
    )
    args = parser.parse_args(argv)
    overrides = {
        k: v for k, v in (("threads", args.threads), ("steps", args.steps)) if v is not None
    }
    settings = moe_settings(**overrides) if args.moe else TrainSettings(**overrides)
    output = args.output or (DEFAULT_MOE_MODEL_DIR if args.moe else DEFAULT_MODEL_DIR)
    stats = train(settings, output)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
