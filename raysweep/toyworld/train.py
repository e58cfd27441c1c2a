"""Train the toy model: a byte-level BPE tokenizer and a tiny LlamaForCausalLM on the four domains.

``python -m raysweep.toyworld.train`` rebuilds ``raysweep/toyworld/assets/raysweep-toy`` (the
committed files) in a few minutes on one CPU thread. The token stream, batch order and
initialisation are fixed by the seed; CPU kernels with the same thread count give the same weights.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from raysweep.toyworld.model import DEFAULT_MODEL_DIR
from raysweep.toyworld.sources import training_texts

BOS, EOS, PAD = "<s>", "</s>", "<pad>"


@dataclass(frozen=True)
class TrainSettings:
    seed: int = 1234
    vocab_size: int = 2048
    tokenizer_docs: int = 6000
    hidden_size: int = 128
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    seqlen: int = 128
    batch_size: int = 32
    steps: int = 500
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.05
    threads: int = 1


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


def build_model(settings: TrainSettings, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(settings.seed)
    return LlamaForCausalLM(config)


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
    tokenizer = train_tokenizer(texts[: settings.tokenizer_docs], settings.vocab_size)
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
    loss_value = float("nan")
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, settings)
        idx = order[(step * settings.batch_size + torch.arange(settings.batch_size)) % n_windows]
        batch = windows[idx]  # (batch, seqlen)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = loss.item()
        if log_every and (step % log_every == 0 or step == settings.steps - 1):
            print(
                f"step {step:5d}  loss {loss_value:.4f}  {time.perf_counter() - started:7.1f}s",
                flush=True,
            )
    model.eval()
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    stats = {
        "train_s": round(time.perf_counter() - started, 1),
        "prep_s": round(prep_s, 1),
        "final_loss": round(loss_value, 4),
        "tokens_seen": settings.steps * settings.batch_size * settings.seqlen,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (output / "training.json").write_text(
        json.dumps({"settings": asdict(settings), "stats": stats}, indent=2) + "\n"
    )
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--steps", type=int, default=TrainSettings.steps)
    parser.add_argument("--threads", type=int, default=TrainSettings.threads)
    args = parser.parse_args(argv)
    stats = train(TrainSettings(steps=args.steps, threads=args.threads), args.output)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
