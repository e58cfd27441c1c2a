"""Capability evaluation: lm-eval on the in-memory model, four dimensions, retention.

Importing this package imports neither ``lm_eval`` nor ``torch``; only
:mod:`raysweep.evaluation.harness` imports ``lm_eval``, inside the functions that evaluate.
"""

from raysweep.evaluation.dimensions import (
    DIMENSIONS,
    SUITES,
    Suite,
    TaskSpec,
    get_suite,
    suite_from_mapping,
)
from raysweep.evaluation.harness import (
    code_execution_refusal,
    evaluate_capabilities,
    prefetch_suite,
    validate_suite,
)
from raysweep.evaluation.perplexity import heldout_perplexity, heldout_texts
from raysweep.evaluation.scoring import (
    CapabilityScores,
    GenerationStats,
    RetentionScores,
    TaskItems,
    dimension_scores,
    score_retention,
)

__all__ = [
    "DIMENSIONS",
    "SUITES",
    "CapabilityScores",
    "GenerationStats",
    "RetentionScores",
    "Suite",
    "TaskItems",
    "TaskSpec",
    "code_execution_refusal",
    "dimension_scores",
    "evaluate_capabilities",
    "get_suite",
    "heldout_perplexity",
    "heldout_texts",
    "prefetch_suite",
    "score_retention",
    "suite_from_mapping",
    "validate_suite",
]
