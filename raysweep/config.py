"""Sweep configuration: strict pydantic schemas, YAML loading and ``key.sub=value`` overrides.

Every default lives in the schema. Library code receives these typed objects (or plain values taken
from them), never raw dictionaries. A config that fails validation raises :class:`ConfigError` whose
message names each bad field, the value given and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from raysweep.names import (  # noqa: F401 - re-exported
    ALLOCATIONS,
    DIMENSIONS,
    DSNOT_CYCLES,
    DSNOT_THRESHOLD,
    EQUAL_SOURCES_MIX,
    METHODS,
    OWL_LAMBDA,
    OWL_M,
    REFINES,
    RIA_ALPHA,
    RIA_PER_ROW,
    UNIFORM_MIX,
    Allocation,
    Method,
    Refine,
    parse_structure,
)
from raysweep.specs import source_spec, suite_spec

TOY_MODEL = "raysweep-toy"
TOY_MOE_MODEL = "raysweep-toy-moe"  # shares the toy model's tokenizer and domains


def _inline_suite(v: Any) -> Any:
    """An inline suite checked as a SuiteSpec and kept as written (trial ids hash it)."""
    if isinstance(v, dict):
        suite_spec(v)
    return v


class ConfigError(ValueError):
    """An invalid sweep configuration; the message is meant to be shown to the user as is."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def structure_sparsity(structure: str, sparsity: float) -> float:
    """The sparsity a (structure, target) point really has: N:M fixes it at exactly (M-N)/M, the
    ratio the pruner checks; an unstructured target is kept to 6 decimals, as trial ids hash it.
    A point's sparsity is derived here and nowhere else."""
    nm = parse_structure(structure)
    return round(sparsity, 6) if nm is None else nm.sparsity


def _check_sparsities(v: list[float] | None) -> list[float] | None:
    for s in v or ():
        if not (0.0 <= s < 1.0) or math.isnan(s):
            raise ValueError(f"sparsity {s} is outside [0, 1)")
    return v


def _unquoted_structures(v: Any) -> Any:
    """YAML 1.1 reads an unquoted ``2:4`` as the base-60 number 124: say so, not "not a string"."""
    for item in v if isinstance(v, list) else ():
        if isinstance(item, int) and not isinstance(item, bool):
            raise ValueError(
                f"{item} is a number: quote an N:M structure in YAML ('2:4'); unquoted, YAML "
                "reads 2:4 as the base-60 number 124"
            )
    return v


def _check_structures(v: list[str] | None) -> list[str] | None:
    if v is None:
        return None
    for s in v:
        parse_structure(s)
    return [s.replace(" ", "") for s in v]


def _check_sparsities_taken(
    where: str, structures: Sequence[str], sparsities: Sequence[float]
) -> None:
    """Every listed sparsity must plan a point: N:M fixes its own ratio, so a sparsity that no
    structure takes (no 'unstructured' and no N:M of that ratio) would be dropped unseen. A grid
    that crosses 'unstructured' with N:M on purpose stays valid: its N:M points run once each."""
    if any(parse_structure(s) is None for s in structures):
        return
    ratios = {round(parse_structure(s).sparsity, 6): s for s in structures}  # type: ignore[union-attr]
    unused = [s for s in sparsities if round(s, 6) not in ratios]
    if unused:
        fixed = ", ".join(f"{s} at {r:g}" for r, s in ratios.items())
        raise ValueError(
            f"{where}.sparsities {unused} are taken by no structure in {list(structures)} (N:M "
            f"fixes the sparsity: {fixed}): add 'unstructured' to {where}.structures or list "
            "only those ratios"
        )


def _check_weights(weights: Mapping[str, float], where: str) -> dict[str, float]:
    if not weights:
        raise ValueError(f"{where} is empty: give at least one source with a positive weight")
    out: dict[str, float] = {}
    for name, w in weights.items():
        w = float(w)
        if math.isnan(w) or math.isinf(w):
            raise ValueError(f"weight of {name!r} is {w}: weights must be finite numbers >= 0")
        if w < 0:
            raise ValueError(f"weight of {name!r} is {w}: weights must be >= 0")
        out[str(name)] = w
    total = sum(out.values())
    if total <= 0:
        raise ValueError(f"all weights in {where} are zero: at least one must be > 0")
    # Weights that already sum to 1 up to rounding are kept bit for bit: dividing them by their
    # float sum again can move the last bit, and a config dumped and validated again (a trial
    # config on its way to a Ray worker) must keep its mix, and so its trial id.
    scale = 1.0 if abs(total - 1.0) <= 1e-9 else total
    return {k: v / scale for k, v in out.items() if v > 0}


class ModelConfig(_Strict):
    """The dense model every trial starts from."""

    path: str = Field(
        TOY_MODEL, description=f"HF hub id, local directory, {TOY_MODEL!r} or {TOY_MOE_MODEL!r}"
    )
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    trust_remote_code: bool = False
    device: str = Field("auto", description="'auto' (CUDA when the trial has a GPU), 'cpu', 'cuda'")


# Records, retention.csv and the report know a mix by its name alone (:func:`_mix_name_problems`).
_MIX_NAMES = (
    f"allowed: a non-empty name that no source, built-in mix ({UNIFORM_MIX}, {EQUAL_SOURCES_MIX}) "
    "or other mix has"
)


class MixConfig(_Strict):
    """A named weighted mix of calibration sources; weights are normalised to sum to 1."""

    name: str
    weights: dict[str, float]

    @field_validator("name")
    @classmethod
    def _named(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(f"a mix name must not be empty; {_MIX_NAMES}")
        return v

    @field_validator("weights")
    @classmethod
    def _normalise(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_weights(v, "mix weights")


class CalibrationConfig(_Strict):
    sources: list[str] = Field(default_factory=list, description="single-source points")
    mixes: list[MixConfig] = Field(default_factory=list, description="weighted mixes as points")
    uniform_mix: bool = Field(
        True,
        description="add the 'uniform' mix: an equal share per capability dimension, split "
        "equally among the listed sources aligned to it",
    )
    n_samples: int = Field(128, gt=0, le=65536, description="calibration windows per trial")
    seqlen: int = Field(2048, gt=0)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    custom_sources: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="user-defined sources: name -> source spec (raysweep.specs)",
    )

    @field_validator("custom_sources")
    @classmethod
    def _typed_sources(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, spec in v.items():
            source_spec(name, spec)  # the mapping is kept as written: trial ids hash it
        return v

    @model_validator(mode="after")
    def _has_points(self) -> CalibrationConfig:
        if not self.sources and not self.mixes:
            raise ValueError("calibration needs at least one entry in 'sources' or 'mixes'")
        repeated = sorted({s for s in self.sources if self.sources.count(s) > 1})
        if repeated:
            raise ValueError(f"sources must be distinct; repeated: {repeated}")
        return self


def _check_ignore(patterns: list[str]) -> list[str]:
    import re

    for text in patterns:
        if not text:
            raise ValueError("an ignore pattern is empty")
        try:
            re.compile(text.removeprefix("re:"))
        except re.error as err:
            raise ValueError(
                f"ignore pattern {text!r} is not a regular expression: {err}"
            ) from None
    return patterns


def _check_owl(structure: str, sparsity: float, lam: float) -> None:
    """The pruning library's own OWL check, for any number of layers."""
    from raysweep.pruning.allocation import check_allocation

    nm = parse_structure(structure)
    check_allocation("owl", nm.sparsity if nm is not None else sparsity, nm, lam)


def _check_dsnot(methods: list[str]) -> None:
    if "magnitude" in methods:
        raise ValueError(
            "refine: dsnot reads calibration statistics (input means and variances) that "
            "magnitude pruning never collects; drop magnitude from pruning.methods or set "
            "refine: none"
        )
    if "sparsegpt" in methods:
        raise ValueError(
            "refine: dsnot refines the masks of mask methods (wanda, ria); sparsegpt updates the "
            "weights it keeps; drop sparsegpt from pruning.methods or set refine: none"
        )


class PruningConfig(_Strict):
    methods: list[Method] = Field(default_factory=lambda: ["wanda", "sparsegpt"], min_length=1)
    sparsities: list[float] = Field(default_factory=lambda: [0.5], min_length=1)
    structures: list[str] = Field(default_factory=lambda: ["unstructured"], min_length=1)
    mode: Literal["sequential", "oneshot"] = "sequential"
    damp: float = Field(0.01, gt=0, description="SparseGPT dampening, fraction of mean diag(H)")
    block_size: int = Field(128, gt=0, description="SparseGPT column block size")
    device: str | None = Field(None, description="where each decoder layer is computed")
    min_expert_tokens: int = Field(
        16, ge=0, description="MoE: calibration tokens a routed expert needs for its own statistics"
    )
    expert_fallback: Literal["layer", "magnitude", "dense"] = Field(
        "layer",
        description="MoE experts below min_expert_tokens: 'layer' (statistics pooled over the "
        "block's experts: all tokens entering it), 'magnitude', or 'dense' (left unpruned)",
    )
    ignore: list[str] = Field(
        default_factory=list,
        description="regular expressions (re.fullmatch on full module names, an 're:' prefix "
        "allowed) of prunable modules kept dense, e.g. '.*linear_attn.*'; each must match one",
    )
    allocations: list[Allocation] = Field(
        default_factory=lambda: ["uniform"],
        min_length=1,
        description="layer-wise sparsity allocation, a sweep axis: 'uniform' (every layer at the "
        "target) or 'owl' (outlier-weighted, Yin et al. 2024)",
    )
    owl_m: float = Field(OWL_M, gt=0, description="OWL: a score is an outlier above M x the mean")
    owl_lambda: float = Field(
        OWL_LAMBDA, ge=0, description="OWL: layer sparsities span 2 x lambda around the target"
    )
    ria_alpha: float = Field(RIA_ALPHA, ge=0, description="RIA: exponent of the activation norm")
    ria_per_row: bool = Field(
        RIA_PER_ROW, description="RIA: compare within output rows instead of the whole matrix"
    )
    refine: Refine = Field(
        "none",
        description="mask refinement after the method: 'none' or 'dsnot' (Zhang et al. 2024)",
    )
    dsnot_cycles: int = Field(DSNOT_CYCLES, ge=0, description="DSnoT: prune-and-regrow cycles")
    dsnot_threshold: float = Field(
        DSNOT_THRESHOLD, ge=0, description="DSnoT: stop a row once its error is below this"
    )

    @model_validator(mode="after")
    def _owl_range(self) -> PruningConfig:
        if "owl" in self.allocations:
            for structure in self.structures:
                for sparsity in self.sparsities:
                    _check_owl(structure, sparsity, self.owl_lambda)
        if self.refine == "dsnot":
            _check_dsnot(self.methods)
        return self

    @field_validator("ignore")
    @classmethod
    def _ignore(cls, v: list[str]) -> list[str]:
        return _check_ignore(v)

    _sparsity_range = field_validator("sparsities")(_check_sparsities)
    _structures = field_validator("structures")(_check_structures)
    _quoted = field_validator("structures", mode="before")(_unquoted_structures)


class TrackingConfig(_Strict):
    """Experiment tracking through Ray Tune's logger callbacks: one tracker run per trial (grid,
    search, confirmation) with its point as parameters and its scores, retentions and timings as
    metrics, and one run holding the report's files."""

    backend: Literal["mlflow", "wandb"]
    uri: str | None = Field(
        None, description="MLflow tracking URI (default: sqlite:///<output>/mlflow.db)"
    )
    experiment: str | None = Field(
        None, description="MLflow experiment / W&B project (default: the sweep's name)"
    )
    mode: Literal["offline", "online"] = Field(
        "offline", description="W&B: offline writes local files only (wandb sync uploads them)"
    )


class EvaluationConfig(_Strict):
    suite: str | dict[str, Any] = Field(
        "toy", description="'study', 'fast', a world's suite ('toy') or an inline suite"
    )

    @field_validator("suite")
    @classmethod
    def _typed_suite(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        return _inline_suite(v)

    limit: int | None = Field(None, gt=0, description="items per task (None: all)")
    item_selection: Literal["random", "first"] = Field(
        "random",
        description="the items of a task that a limit cuts: 'random' (a seeded random subset, "
        "the same in every trial) or 'first' (lm-eval's limit: its first N items)",
    )
    item_seed: int = Field(0, description="seed of the random item subsets")
    batch_size: int = Field(8, gt=0)
    seed: int = 0
    max_length: int = Field(2048, gt=0, description="context length given to lm-eval")
    allow_code_execution: bool = False
    perplexity: bool = Field(True, description="also record held-out perplexity")


class ResourcesConfig(_Strict):
    """Ray resources of one trial (``tune.with_resources``)."""

    cpu: float = Field(1.0, ge=0)
    gpu: float = Field(0.0, ge=0)
    torch_threads: int = Field(1, gt=0, description="torch intra-op threads inside a trial")


class RayConfig(_Strict):
    address: str | None = Field(None, description="None: start a local Ray; 'auto' or ray://...")
    num_cpus: int | None = Field(None, gt=0, description="CPUs of a local Ray (None: all)")
    max_concurrent_trials: int | None = Field(None, gt=0)
    max_failures: int = Field(2, ge=0, description="retries of a crashed trial")
    storage_path: str | None = Field(None, description="Tune storage (shared on clusters)")
    dashboard: bool = Field(True, description="start the Ray dashboard with a local Ray")


class SearchConfig(_Strict):
    sources: list[str] | None = Field(
        None, description="sources whose weights are searched (None: those aligned to a dimension)"
    )
    objective: Literal["worst_retention", "total_retention", "worst_retention_above_chance"] = (
        "worst_retention"
    )
    multi_objective: bool = False
    n_trials: int = Field(40, gt=0)
    max_concurrent: int = Field(2, gt=0)
    seed: int = Field(0, description="seed of the Optuna sampler")
    seeds: list[int] | None = Field(
        None,
        min_length=1,
        description="calibration seeds each search trial prunes its mix with; it reports the "
        "mean objective over them, and the confirmation runs each (None: the first of "
        "calibration.seeds)",
    )

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"search seeds must be distinct; repeated: "
                             f"{sorted({s for s in v if v.count(s) > 1})}")  # fmt: skip
        return v

    min_weight: float = Field(0.02, ge=0, lt=1)
    mode: Literal["sequential", "oneshot_stats"] = "oneshot_stats"
    suite: str | dict[str, Any] | None = Field(None, description="suite for search trials")
    limit: int | None = Field(None, gt=0)
    item_selection: Literal["random", "first"] | None = Field(
        None, description="the items search.limit cuts (None: evaluation.item_selection)"
    )

    @field_validator("suite")
    @classmethod
    def _typed_suite(cls, v: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        return _inline_suite(v)

    perplexity: bool = Field(
        False, description="record held-out perplexity in search trials (no objective reads it)"
    )
    reference: str | None = Field(None, description="reference source shown beside the best mix")
    early_stopping: Literal["none", "asha", "hyperband"] = Field(
        "none",
        description="score search trials in rungs of items and stop those that trail at a rung: "
        "asha (Tune's ASHAScheduler, one bracket) or hyperband (its asynchronous HyperBand, "
        "several brackets). Off by default: a stopped mix is judged on its first items only, "
        "and it needs zero-shot tasks whose score is the mean of per-item values, which the "
        "study suite's few-shot tasks are not",
    )
    rungs: list[int] | None = Field(
        None,
        min_length=1,
        description="items per task scored before each report, strictly increasing and below "
        "the full set (search.limit, or each task's size); the full set is always the last "
        "rung (None: grace_period x reduction_factor^k below it). Counts, not fractions, as "
        "search.limit is: tasks of different sizes meet a rung on as many items each",
    )
    reduction_factor: float = Field(
        3.0, gt=1, description="a rung keeps the best 1/reduction_factor of the trials reaching it"
    )
    grace_period: int = Field(
        50, gt=0, description="items per task a trial scores before it may be stopped"
    )

    @field_validator("rungs")
    @classmethod
    def _increasing_rungs(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (v[0] <= 0 or any(b <= a for a, b in zip(v, v[1:], strict=False))):
            raise ValueError("rungs must be positive item counts in strictly increasing order")
        return v

    @model_validator(mode="after")
    def _one_metric_per_rung(self) -> SearchConfig:
        if self.early_stopping != "none" and self.multi_objective:
            raise ValueError(
                f"early_stopping {self.early_stopping!r} with multi_objective: true: a rung ranks "
                "trials on one objective; set early_stopping: none or multi_objective: false"
            )
        return self

    confirm: bool = True
    save_best: bool = Field(
        False,
        description="save each confirmed best mix's pruned model (save_pretrained + recipe card) "
        "under <output>/search/best-<method>-<structure>-<sparsity>/",
    )
    methods: list[Method] | None = None
    sparsities: list[float] | None = None
    structures: list[str] | None = None

    # The search's axes take the grid's validators: a bad value is a config error, not a
    # traceback when the search's points are planned.
    _sparsity_range = field_validator("sparsities")(_check_sparsities)
    _structures = field_validator("structures")(_check_structures)
    _quoted = field_validator("structures", mode="before")(_unquoted_structures)


class SweepConfig(_Strict):
    name: str = "default"
    output_dir: str = "runs/default"
    model: ModelConfig = Field(default_factory=ModelConfig)
    calibration: CalibrationConfig = Field(
        default_factory=lambda: CalibrationConfig(sources=["toy_general_prose"])
    )
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    search: SearchConfig | None = None
    analysis: bool = Field(True, description="write the analysis report at the end")
    tracking: TrackingConfig | None = Field(
        None, description="log every trial to an experiment tracker (MLflow or W&B)"
    )

    @model_validator(mode="after")
    def _axes(self) -> SweepConfig:
        _check_sparsities_taken("pruning", self.pruning.structures, self.pruning.sparsities)
        s = self.search
        if s is not None and (s.structures or s.sparsities):
            _check_sparsities_taken(
                "search",
                s.structures or self.pruning.structures,
                s.sparsities or self.pruning.sparsities,
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --------------------------------------------------------------------------- loading


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for i, k in enumerate(keys[:-1]):
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {dotted!r}: {'.'.join(keys[: i + 1])} is not a section")
        node = nxt
    node[keys[-1]] = value


def apply_overrides(tree: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides; values are parsed as YAML (``0.5``, ``[1,2]``, ``true``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.sub=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        _set_path(tree, key, yaml.safe_load(raw) if raw.strip() else None)
    return tree


def default_config_text() -> str:
    return resources.files("raysweep").joinpath("configs/default.yaml").read_text()


def _format_error(err: ValidationError) -> str:
    lines = [f"invalid configuration ({err.error_count()} problem(s)):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            parent_loc = e["loc"][:-1]
            allowed = _allowed_keys(parent_loc)
            close = difflib.get_close_matches(str(e["loc"][-1]), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"  {loc}: unknown key{hint}; allowed keys: {', '.join(allowed)}")
            continue
        given = e.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {loc}: {msg}{shown}" if loc else f"  {msg}")
    return "\n".join(lines)


def _allowed_keys(loc: Sequence[Any]) -> list[str]:
    model: type[BaseModel] = SweepConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        ann = field.annotation
        sub = _model_in(ann)
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def _model_in(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate_config(tree: Mapping[str, Any], *, mix_names: bool = True) -> SweepConfig:
    """Validate a plain mapping into a SweepConfig, then check names against the registries.
    ``mix_names=False``: the mixes are a record's points, named by the sweep that ran them (a
    search's ``equal_sources``, a source's own name), not new names to check."""
    try:
        cfg = SweepConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None
    _check_registries(cfg, mix_names=mix_names)
    return cfg


def _check_registries(cfg: SweepConfig, *, mix_names: bool = True) -> None:
    """Names that only the registries know: calibration sources and evaluation suites (and,
    with ``mix_names``, mix names that one of them, a built-in mix or another mix has)."""
    # Both torch-free: a config is checked without loading torch (tests/test_specs.py).
    from raysweep.calibration import get_source, source_from_spec
    from raysweep.evaluation import get_suite

    problems: list[str] = []
    extra = {}
    for name, spec in cfg.calibration.custom_sources.items():
        try:
            extra[name] = source_from_spec(name, spec)
        except (ValueError, TypeError) as exc:
            problems.append(f"  calibration.custom_sources.{name}: {exc}")
    names = [("calibration.sources", s) for s in cfg.calibration.sources]
    for i, mix in enumerate(cfg.calibration.mixes):
        names += [(f"calibration.mixes.{i}.weights", s) for s in mix.weights]
    if cfg.search is not None:
        names += [("search.sources", s) for s in cfg.search.sources or ()]
        names += [("search.reference", s) for s in [cfg.search.reference] if s]
    for where, name in names:
        if name.startswith("file:"):
            # Resolved where the trial runs: on a cluster the file may live only on the workers.
            if not Path(name[5:]).expanduser().exists():
                warnings.warn(f"{where}: {name!r} does not exist on this machine", stacklevel=2)
            continue
        try:
            get_source(name, extra=extra)
        except ValueError as exc:
            problems.append(f"  {where}: {exc}")
    if mix_names:
        problems += _mix_name_problems(cfg, lambda name: _is_source(name, get_source, extra))
    suites = [("evaluation.suite", cfg.evaluation.suite)]
    if cfg.search is not None and cfg.search.suite is not None:
        suites.append(("search.suite", cfg.search.suite))
    for where, suite in suites:
        try:
            s = get_suite(suite)
        except (ValueError, TypeError) as exc:
            problems.append(f"  {where}: {exc}")
            continue
        unsafe = [t.name for t in s.tasks if t.unsafe_code]
        if unsafe and not cfg.evaluation.allow_code_execution:
            problems.append(
                f"  {where}: tasks {unsafe} execute model-written code; set "
                "evaluation.allow_code_execution: true to run them (only in a sandbox you trust)"
            )
    if not problems and cfg.search is not None and cfg.search.early_stopping != "none":
        problems += _rung_problems(cfg, get_suite)
    if problems:
        raise ConfigError("invalid configuration:\n" + "\n".join(problems))


def _rung_problems(cfg: SweepConfig, get_suite: Any) -> list[str]:
    """Why the search's suite cannot be scored in rungs, one line each: a rung must score as
    the same items scored at once would, and its sizes must lie below the full set."""
    from raysweep.evaluation.rungs import full_items
    from raysweep.evaluation.subsets import cut_tasks

    s = cfg.search
    assert s is not None
    where = "search.suite" if s.suite is not None else "evaluation.suite"
    suite = get_suite(s.suite or cfg.evaluation.suite)
    limit = s.limit or cfg.evaluation.limit
    stop = f"search.early_stopping {s.early_stopping!r}"
    # lm-eval draws every item's few-shot examples from one random stream in item order, so
    # an item scored in a chunk would see other examples than in the one-shot evaluation.
    shots = [t.name for t in suite.tasks if t.num_fewshot != 0]
    if shots:
        return [f"  {where}: tasks {shots} are few-shot (or keep lm-eval's default shots): "
                f"{stop} scores items in chunks and needs zero-shot tasks; use a zero-shot "
                "search.suite or early_stopping: none"]  # fmt: skip
    selection = s.item_selection or cfg.evaluation.item_selection
    if selection == "first" and cut_tasks(suite, limit):
        return [f"  search.item_selection: 'first' with {stop}: rungs are prefixes of a seeded "
                "random order of the items; use item_selection: random"]  # fmt: skip
    full = full_items(suite, limit)
    if full is None:
        return [f"  search.limit: None with {stop}: a task of {where} declares no size, so the "
                "full set's items per task are unknown; set search.limit"]  # fmt: skip
    if s.rungs is not None and s.rungs[-1] >= full:
        return [f"  search.rungs: {s.rungs} must lie below the full set's {full} items per task "
                "(the full set is always the last rung)"]  # fmt: skip
    return []


def _is_source(name: str, get_source: Any, extra: Mapping[str, Any]) -> bool:
    try:
        get_source(name, extra=extra)
    except ValueError:
        return False
    return True


def _mix_name_problems(cfg: SweepConfig, is_source: Any) -> list[str]:
    """A mix named like a source, a built-in mix or another mix would be taken for it in the
    records, ``retention.csv`` and the report: one line per such name. ``uniform`` is free for a
    user's mix only where the built-in one is off (``calibration.uniform_mix: false``)."""
    cal = cfg.calibration
    listed = {*cal.sources, *cal.custom_sources, *(s for m in cal.mixes for s in m.weights)}
    if cfg.search is not None:
        listed |= {*(cfg.search.sources or ()), cfg.search.reference}
    built_in = {EQUAL_SOURCES_MIX, *([UNIFORM_MIX] if cal.uniform_mix else [])}
    problems, seen = [], {}
    for i, mix in enumerate(cal.mixes):
        if mix.name in built_in:
            why = f"is the name of the built-in {mix.name} mix"
            if mix.name == UNIFORM_MIX:
                why += " (calibration.uniform_mix: false lets a mix of yours take its place)"
        elif mix.name in seen:
            why = f"is the name of calibration.mixes.{seen[mix.name]} too"
        elif mix.name in listed or is_source(mix.name):
            why = "is the name of a calibration source"
        else:
            seen[mix.name] = i
            continue
        problems.append(f"  calibration.mixes.{i}.name: {mix.name!r} {why}; {_MIX_NAMES}")
    return problems


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> SweepConfig:
    """Load a sweep config from YAML (the embedded default when ``path`` is None) plus overrides."""
    if path is None:
        text = default_config_text()
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        text = p.read_text()
        if not text.strip():
            raise ConfigError(
                f"config file {str(p)!r} is empty: give at least a calibration or model section "
                "(configs/default.yaml shows every section), or omit --config for the default"
            )
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path or 'default'} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"config {path or 'default'} must be a mapping at the top level")
    tree = apply_overrides(tree, overrides)
    if path is not None:
        _absolutise_include_paths(tree, Path(path).resolve().parent)
    return validate_config(tree)


def _absolutise_include_paths(tree: dict[str, Any], base: Path) -> None:
    """Inline suites name task folders relative to the config file; Tune trials change cwd."""
    for section in ("evaluation", "search"):
        suite = (tree.get(section) or {}).get("suite")
        if isinstance(suite, dict) and isinstance(suite.get("include_path"), str):
            p = Path(suite["include_path"]).expanduser()
            suite["include_path"] = str(p if p.is_absolute() else (base / p).resolve())


# --------------------------------------------------------------------------- one trial


# Options absent from a trial's id at their schema default, so that the id of every trial that
# does not use them is as it always was: those only MoE models read, and the pruning choices
# added after trial ids were first written.
_DEFAULT_FREE_OPTIONS = (
    "min_expert_tokens", "expert_fallback", "ignore", "allocation", "owl_m", "owl_lambda",
    "ria_alpha", "ria_per_row", "refine", "dsnot_cycles", "dsnot_threshold",
)  # fmt: skip
_ITEM_OPTIONS = ("item_selection", "item_seed")


class TrialConfig(_Strict):
    """One point of a sweep: everything a trial needs, exactly reproducible from its record."""

    sweep: str = "default"
    phase: Literal["grid", "search", "confirm"] = "grid"
    model: ModelConfig = Field(default_factory=ModelConfig)
    mix: dict[str, float]
    mix_name: str
    n_samples: int = Field(128, gt=0)
    seqlen: int = Field(2048, gt=0)
    seed: int = 0
    custom_sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    source_files: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="per file-backed source, the SHA-256 of each local file's content when the "
        "point was planned: the trial id follows the files' content",
    )
    method: Method = "wanda"
    sparsity: float = Field(0.5, ge=0, lt=1)
    structure: str = "unstructured"
    mode: Literal["sequential", "oneshot"] = "sequential"
    damp: float = Field(0.01, gt=0)
    block_size: int = Field(128, gt=0)
    pruning_device: str | None = None
    min_expert_tokens: int = Field(16, ge=0)
    expert_fallback: Literal["layer", "magnitude", "dense"] = "layer"
    ignore: list[str] = Field(default_factory=list)
    allocation: Allocation = "uniform"
    owl_m: float = Field(OWL_M, gt=0)
    owl_lambda: float = Field(OWL_LAMBDA, ge=0)
    ria_alpha: float = Field(RIA_ALPHA, ge=0)
    ria_per_row: bool = RIA_PER_ROW
    refine: Refine = "none"
    dsnot_cycles: int = Field(DSNOT_CYCLES, ge=0)
    dsnot_threshold: float = Field(DSNOT_THRESHOLD, ge=0)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @field_validator("mix")
    @classmethod
    def _normalise(cls, v: dict[str, float]) -> dict[str, float]:
        return _check_weights(v, "mix")

    @field_validator("structure")
    @classmethod
    def _structure(cls, v: str) -> str:
        parse_structure(v)
        return v.replace(" ", "")

    @model_validator(mode="before")
    @classmethod
    def _nm_sparsity(cls, data: Any) -> Any:
        """An N:M structure fixes the sparsity: it is derived from the structure here (exactly
        the ratio the pruner checks), whatever target came with it."""
        if isinstance(data, dict) and isinstance(data.get("structure"), str):
            try:
                sparsity = structure_sparsity(data["structure"], data.get("sparsity", 0.5))
            except ValueError:
                return data  # the structure's own validator names the problem
            if parse_structure(data["structure"]) is not None:
                data = {**data, "sparsity": sparsity}
        return data

    @field_validator("ignore")
    @classmethod
    def _ignore(cls, v: list[str]) -> list[str]:
        return _check_ignore(v)

    @model_validator(mode="after")
    def _choices(self) -> TrialConfig:
        if self.allocation == "owl":
            _check_owl(self.structure, self.sparsity, self.owl_lambda)
        if self.refine == "dsnot":
            _check_dsnot([self.method])
        return self

    def identity(self) -> dict[str, Any]:
        """What determines the result: the trial id hashes exactly this."""
        d = self.model_dump(mode="json", exclude={"phase", "mix_name", "resources", "sweep"})
        # The item selection counts only where it picks items (a random subset of a task that a
        # limit cuts): the id of every other trial is as it was before there was a choice.
        for name in _ITEM_OPTIONS:
            del d["evaluation"][name]
        d["evaluation"].update(self.item_selection_key())
        used = set(self.mix)
        d["custom_sources"] = {k: v for k, v in d["custom_sources"].items() if k in used}
        # Only points of file-backed sources carry digests: every other id is as it was.
        files = {k: v for k, v in d.pop("source_files").items() if k in used}
        if files:
            d["source_files"] = files
        for name in _DEFAULT_FREE_OPTIONS:
            if d[name] == TrialConfig.model_fields[name].get_default(call_default_factory=True):
                del d[name]
        return d

    def item_selection_key(self) -> dict[str, Any]:
        """``{"item_selection": "random", "item_seed": s}`` when the evaluation draws random
        item subsets (of the tasks a limit cuts), else empty: lm-eval's first N, which is every
        item where no limit cuts (:func:`raysweep.evaluation.subsets.selection_key`)."""
        from raysweep.evaluation.subsets import selection_key

        ev = self.evaluation
        return selection_key(ev.suite, ev.limit, ev.item_selection, ev.item_seed)

    @property
    def trial_id(self) -> str:
        from raysweep.records import trial_id_for

        return trial_id_for(self.identity())

    @property
    def label(self) -> str:
        """Readable name for Ray's dashboard and logs, e.g. ``wanda-0.6-gsm8k-s0``."""
        parts = [self.method]
        parts.append(self.structure if self.structure != "unstructured" else f"{self.sparsity:g}")
        parts.append(self.mix_name.replace("/", "_").replace(":", "_"))
        parts.append(f"s{self.seed}")
        return "-".join(parts)
