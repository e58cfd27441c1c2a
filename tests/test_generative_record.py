"""A real tiny trial on the ``toy_generative`` suite: retention against the dense baseline for
generated tasks, their per-item side file, and what generation produced, in the record."""

from __future__ import annotations

import json

from raysweep import items as side_files
from raysweep.config import EvaluationConfig, TrialConfig
from raysweep.dense import DenseBaseline, evaluate
from raysweep.records import TrialRecord

GENERATIVE = {"toy_math_gen", "toy_code_gen", "toy_code_output_gen"}


def test_generative_trial_records_retention_items_and_generation():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from raysweep.pipeline import run_trial_with_items
    from raysweep.toyworld import ensure_toy_model

    evaluation = EvaluationConfig(suite="toy_generative", limit=6, perplexity=False,
                                  allow_code_execution=True)  # fmt: skip
    trial = TrialConfig(mix={"toy_math_word": 1.0}, mix_name="math", n_samples=4, seqlen=32,
                        method="wanda", sparsity=0.7, evaluation=evaluation)  # fmt: skip
    path = ensure_toy_model()
    dense_model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    dense_scores = evaluate(dense_model, tokenizer, "toy_generative", evaluation, items=True)
    outcome = run_trial_with_items(trial, DenseBaseline("test-dense", dense_scores))
    record = outcome.record
    assert record.status == "ok"
    assert set(record.generated_tokens) == set(record.truncated_share) == GENERATIVE
    assert set(record.dense_generated_tokens) == GENERATIVE
    assert all(0.0 <= share <= 1.0 for share in record.truncated_share.values())
    assert record.dense_generated_tokens == {
        t: g.mean_tokens for t, g in dense_scores.generation.items()
    }  # fmt: skip
    for dim in ("math", "code"):
        dense_dim = record.dense_dimension_scores[dim]
        assert record.retention[dim] == record.dimension_scores[dim] / dense_dim
    # The side file holds the generated tasks' items, each averaging to its task's score.
    payload = side_files.validate(outcome.items, record.task_scores)
    assert set(payload["tasks"]) >= GENERATIVE
    assert payload["tasks"]["toy_math_gen"]["metric"] == "exact_match,strict-match"
    assert payload["tasks"]["toy_code_gen"]["metric"] == "pass@1,create_test"


def test_records_without_generation_fields_still_parse():
    from raysweep.pipeline import error_record

    trial = TrialConfig(mix={"toy_math_word": 1.0}, mix_name="math", n_samples=4, seqlen=32)
    written = json.loads(error_record(trial, "x", attempts=1).to_json())
    for key in ("generated_tokens", "dense_generated_tokens", "truncated_share"):
        del written[key]
    old = TrialRecord.model_validate(written)
    assert old.generated_tokens == old.truncated_share == old.dense_generated_tokens == {}
