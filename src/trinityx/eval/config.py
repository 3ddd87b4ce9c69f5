"""Config dataclasses of `trinityx eval` and `trinityx compare` (to be moved into config.py).

They follow config.py's conventions: one docstring per field (shown by `--help`), loaded by the
strict `load_config`. `check_eval_config` adds the semantic checks the type checker cannot do
(benchmark names, limits, judge settings), reporting every problem at once as a ConfigError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from trinityx.config import BackboneConfig, ConfigError

DEFAULT_BENCHMARKS = [
    "alpaca_eval",
    "beavertails",
    "truthfulqa_mc",
    "truthfulqa_gen",
    "hh_harmless",
]


@dataclass
class JudgeSettings:
    """Which judge backend produces the judgements (see trinityx.eval.judges.registry)."""

    kind: Literal["openai", "hf_classifier", "local"] = "local"
    """`local`: the CPU-trained judges (trinityx train-judge); `openai`: any OpenAI-compatible
    endpoint (GPT-4 / GPT-judge protocol); `hf_classifier`: a sequence classifier (harm only)."""
    path: str | None = "runs/judges"
    """local: folder holding truth/ info/ harm/ pairwise/ (or one judge artifact); hf_classifier:
    the classifier folder."""
    base_url: str | None = None
    """openai: endpoint, e.g. https://api.openai.com/v1 or http://localhost:8000/v1."""
    model: str | None = None
    """openai: model name, e.g. gpt-4o."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: environment variable holding the API key (the key itself never goes in a config)."""
    unsafe_label: str = "unsafe"
    """hf_classifier: label name (or index, as a string of digits) whose probability means unsafe."""
    hard_preferences: bool | None = None
    """local AlpacaEval judge: true = 1 or 2 per item like AlpacaEval's discrete GPT-4 annotator,
    false = soft 1 + P(model better), null = the mode recorded in the judge's judge.json."""
    prefer_head: Literal["helpfulness", "pairwise"] = "helpfulness"
    """local AlpacaEval judge: `helpfulness` (boosted trees, validated on held-out models) or the
    older `pairwise` (MiniLM + logistic regression)."""


@dataclass
class MergeSettings:
    """Static-merge baselines (`merge:<method>`): how the experts' task vectors are combined."""

    weights: dict[str, float] = field(default_factory=dict)
    """Expert name -> weight (missing names get 1.0: the plain sum of task vectors)."""
    density: float = 0.5
    """TIES / DARE: fraction of each task vector's entries kept (TIES: largest magnitude; DARE:
    random, rescaled by 1/density)."""


@dataclass
class EvalConfig:
    """`trinityx eval`: run the HHH benchmarks on one model (artifact folder or baseline spec)."""

    model: str
    """A baseline spec (`base`, `expert:<dir>`, `multitask:<dir>`, `merge:<method>`,
    `trinityx:<dir>`, `trinityx-uncalibrated:<dir>`, `h3fusion`, `ensemble`, `xlora`,
    `hf:<dir or hub id>`) or an artifact folder (kind read from its manifest.json)."""
    output_dir: str
    """Result folder to write (atomically): results.json, records/, report.md, PNG charts."""
    name: str | None = None
    """Display name in tables; default derived from `model`."""
    benchmarks: list[str] = field(default_factory=lambda: list(DEFAULT_BENCHMARKS))
    """alpaca_eval, beavertails, truthfulqa_mc, truthfulqa_gen, hh_harmless (`truthfulqa` = both
    TruthfulQA parts). The overall score needs alpaca_eval, beavertails and truthfulqa_gen."""
    limits: dict[str, int] = field(default_factory=dict)
    """Benchmark -> number of items (first N in file order; beavertails stratified by category).
    Missing: the full set."""
    data_dir: str = "../shared/data"
    """Folder with the evaluation files (layout as in the shared data README)."""
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    judges: dict[str, JudgeSettings] = field(default_factory=dict)
    """Per-judgement override of `judge`: keys harmful, truthful, informative, prefer (e.g. a
    BeaverTails classifier for harmful, local judges for the rest)."""
    backbone: BackboneConfig | None = None
    """Backbone for `base` and the expert-combining baselines, and an override for artifacts
    (default: the backbone their manifests record; `base` without it: the embedded SmolLM2)."""
    experts: dict[str, str] = field(default_factory=dict)
    """Expert name -> expert folder, for `merge:<method>`, `h3fusion`, `ensemble`, `xlora`."""
    merge: MergeSettings = field(default_factory=MergeSettings)
    baseline_options: dict[str, Any] = field(default_factory=dict)
    """Extra settings of one baseline; h3fusion: top_k, steps, lr, limit (gate prompts per
    dimension), max_length, router_data ([{path, label, split}]); ensemble: weights (name ->
    w); xlora: xlora_depth, xlora_size. Unknown keys are an error."""
    exclude_prompts: str | None = None
    """JSON-lines file of prompt strings that data a baseline trains on at evaluation time
    (H3Fusion's gate prompts) must not contain; the experiment sets it to every evaluation
    prompt, as for the experts and the router."""
    hhh_weights: dict[str, float] | None = None
    """TrinityX models: user HHH weights pi (null: the router alone decides)."""
    weight_mode: Literal["multiply", "fixed"] = "multiply"
    """TrinityX models: `multiply` (router (x) pi) or `fixed` (gates = pi, no router)."""
    max_new_tokens: int = 256
    """Greedy generation length for alpaca_eval, beavertails and truthfulqa_gen."""
    batch_size: int = 8
    """Prompts per generation batch / requests per log-likelihood batch."""
    cache_dir: str = "runs/eval_cache"
    """Generation cache (one JSONL per model fingerprint): reruns and interrupted runs resume."""
    n_boot: int = 1000
    """Bootstrap resamples for the 95% intervals."""
    seed: int = 0
    """Seeds the bootstrap and the DARE merge."""
    overwrite: bool = False
    """Replace an existing result folder instead of refusing."""


@dataclass
class CompareConfig:
    """`trinityx compare`: one table (paper layout) and chart over several eval result folders."""

    results: list[str]
    """Eval result folders (each with results.json) or glob patterns such as runs/eval/*."""
    output_dir: str
    """Folder to write compare.md, compare.json and compare.png (atomically)."""
    title: str = "HHH evaluation"
    """Chart and table title."""
    overwrite: bool = False
    """Replace an existing folder instead of refusing."""


JUDGEMENTS = ("harmful", "truthful", "informative", "prefer")


def check_eval_config(cfg: EvalConfig) -> None:
    """Semantic checks beyond types; every problem at once, each naming its key."""
    from trinityx.eval.tasks.registry import BENCHMARKS, expand_benchmarks

    problems: list[str] = []
    try:
        expand_benchmarks(cfg.benchmarks)
    except ValueError as e:
        problems.append(f"benchmarks: {e}")
    if not cfg.benchmarks:
        problems.append("benchmarks: empty; list at least one of " + ", ".join(BENCHMARKS))
    for key, n in cfg.limits.items():
        if key not in BENCHMARKS and key != "truthfulqa":
            problems.append(f"limits.{key}: unknown benchmark; known: {', '.join(BENCHMARKS)}")
        elif not isinstance(n, int) or n <= 0:
            problems.append(f"limits.{key}: must be a positive integer, got {n!r}")
    for key in cfg.judges:
        if key not in JUDGEMENTS:
            problems.append(f"judges.{key}: unknown judgement; choose from {', '.join(JUDGEMENTS)}")
    for where, js in [("judge", cfg.judge), *((f"judges.{k}", v) for k, v in cfg.judges.items())]:
        if js.kind in ("local", "hf_classifier") and not js.path:
            problems.append(f"{where}.path: required for kind {js.kind!r}")
    if not 0.0 < cfg.merge.density <= 1.0:
        problems.append(f"merge.density: must be in (0, 1], got {cfg.merge.density}")
    for key in ("max_new_tokens", "batch_size", "n_boot"):
        if getattr(cfg, key) <= 0:
            problems.append(f"{key}: must be > 0, got {getattr(cfg, key)}")
    kind = cfg.model.partition(":")[0]
    if kind in ("merge", "h3fusion", "ensemble", "xlora") and not cfg.experts:
        problems.append(f"experts: `{kind}` needs the expert folders (name -> folder)")
    if problems:
        raise ConfigError("eval config", problems)


@dataclass
class TrainJudgeConfig:
    """`trinityx train-judge`: one local judge (MiniLM features + a logistic or boosted-tree head)."""

    kind: Literal["truth", "info", "harm", "pairwise", "helpfulness"]
    """truth/info: TruthfulQA GPT-judge fine-tune files; harm: BeaverTails pairs; pairwise and
    helpfulness: GPT-4 AlpacaEval annotations. Held-out splits are by question / prompt /
    instruction, and for helpfulness also by generator (whole models)."""
    data_dir: str
    """The data folder (e.g. ../shared/data; see its README)."""
    out_dir: str
    """Judge artifact folder to write (atomically)."""
    max_rows: int | None = None
    """Cap on training rows for quick runs (null = all)."""
    seed: int = 0
    """Seeds the held-out split and the classifier."""
    cache_dir: str | None = None
    """On-disk embedding cache: re-runs (and truth + info) reuse sentence vectors."""
    n_test_generators: int = 8
    """helpfulness: whole models held out for validation (a seeded split over generators)."""
    train_generators: list[str] | None = None
    """helpfulness: restrict the training pool to these models (null = every model not held out),
    e.g. to those whose texts are already in the embedding cache on a slow CPU."""
