"""The model card of a saved pruned model: Hub metadata that huggingface_hub parses, and a body
that says how it was pruned, on what data, and what it retains."""

from __future__ import annotations

from huggingface_hub import ModelCard

from raysweep.model_card import model_card, write_model_card


def _card(**pruning) -> dict:
    config = {"model": {"path": "meta-llama/Llama-3.1-8B"}, "mix": {"c4": 0.5, "toy_math_word": 0.5},
              "method": "wanda", "sparsity": 0.7, "structure": "unstructured", "n_samples": 128,
              "seqlen": 2048, "seed": 0, "mode": "sequential", "allocation": "owl", "owl_m": 5.0,
              "owl_lambda": 0.08, "refine": "none", "ignore": [".*linear_attn.*"]}  # fmt: skip
    return {
        "trial_id": "abc123",
        "model": {"path": "meta-llama/Llama-3.1-8B", "revision": None},
        "calibration": {
            "mix_name": "half",
            "mix": {"c4": 0.5, "toy_math_word": 0.5},
            "counts": {"c4": 64, "toy_math_word": 64},
            "n_samples": 128,
            "seqlen": 2048,
            "seed": 0,
            "custom_sources": {},
        },  # fmt: skip
        "pruning": {
            "method": "wanda",
            "structure": "unstructured",
            "sparsity": 0.7,
            "mode": "sequential",
            "achieved_sparsity": 0.7,
            "allocation": "owl",
            "refine": "none",
            "decoder_zero_fraction": 0.69,
            "dense_kept": {"vector": 0.01},
            "layer_sparsity": [0.75, 0.65],
            "statistics_fallback": {},
            **pruning,
        },  # fmt: skip
        "evaluation": {
            "evaluation": {"suite": "toy"},
            "dimension_scores": {"general": 0.8, "math": 0.4},
            "dense_dimension_scores": {"general": 1.0, "math": 0.8},
            "retention": {"general": 0.8, "math": 0.5},
            "worst_retention": 0.5,
            "total_retention": 0.65,
        },  # fmt: skip
        "config": config,
    }


def test_the_hub_parses_the_metadata(tmp_path):
    path = write_model_card(tmp_path, _card())
    card = ModelCard.load(path)
    assert card.data.base_model == "meta-llama/Llama-3.1-8B"
    assert card.data.library_name == "transformers"
    assert card.data.datasets == ["allenai/c4"]  # the toy source lives in no Hub dataset
    assert {"pruned", "sparsity", "wanda", "owl"} <= set(card.data.tags)


def test_the_body_says_how_it_was_pruned_and_what_it_retains():
    text = model_card(_card())
    assert "| achieved sparsity (prunable matrices) | 70.00 % |" in text
    assert "| zeros over all decoder-layer parameters | 69.00 % |" in text
    assert "Per-layer sparsity (%), decoder layer 0 first: 75.0, 65.0." in text
    assert "| c4 | 0.5 | 64 |" in text
    assert "| math | 0.4000 | 0.8000 | 0.500 |" in text
    assert "Worst-case retention 0.500, total (mean) 0.650." in text
    assert "--calibration c4=0.5,toy_math_word=0.5 --method wanda --sparsity 0.7" in text
    assert "'pruning.allocations=[owl]'" in text
    assert "'pruning.ignore=[\".*linear_attn.*\"]'" in text


def test_a_local_model_names_no_base_model(tmp_path):
    card = _card()
    card["model"]["path"] = str(tmp_path)
    parsed = ModelCard(model_card(card))
    assert parsed.data.base_model is None
