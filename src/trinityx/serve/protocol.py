"""OpenAI wire format of `trinityx serve`: request / response / stream-chunk schemas (pydantic).

Mirrors OpenAI's chat-completions and legacy completions APIs (like vLLM's `protocol.py`) plus
one extension: `hhh` in a request (the user's HHH weights pi and how they combine with the
router, Eq. gates) and `routing` on every choice of a response (the gates that were used).
Unknown request fields are an error (400 naming the field), never silently ignored. The
FastAPI app publishes these models in its OpenAPI schema, which is what the fuzz test reads.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_N = 16  # choices per request; the server may lower it (--max-n)
MAX_STOP = 4  # stop sequences per request, as OpenAI
MAX_PROMPTS = 64  # prompts in one /v1/completions request
MAX_SEED = 2**63 - 1  # torch.Generator seeds are unsigned 64-bit; keep JSON-safe signed range


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ errors
class ErrorInfo(BaseModel):
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx / 5xx body: `{"error": {"message", "type", "param", "code"}}` (OpenAI's shape)."""

    error: ErrorInfo


# ------------------------------------------------------------------ the HHH extension
class HHHOptions(_Strict):
    """How this request's experts are mixed (TrinityX extension; plain models reject it)."""

    weights: dict[str, float] | None = Field(
        None,
        description="User HHH weights pi, expert name -> weight (missing names: 0). null: the "
        "router alone decides.",
        examples=[{"helpful": 1.0, "harmless": 0.5, "honest": 0.5}],
    )
    mode: Literal["multiply", "fixed"] = Field(
        "multiply",
        description="multiply: gates proportional to router probs (x) pi; fixed: gates = pi, "
        "router ignored (needs weights).",
    )
    allow_negative: bool = Field(
        False, description="Allow negative weights (subtract that expert's task vector)."
    )
    top_k: int | None = Field(
        None, ge=1, description="Keep only the k largest |gates| per position (sparse routing)."
    )
    per_token: bool = Field(
        False,
        description="Also return the gates used for every generated token, the token texts and "
        "(token routing) each token's gates per transformer block.",
    )
    preset: str | None = Field(
        None,
        description="A named preset saved in the model artifact (GET /v1/models lists them); "
        "fields this request sets override the preset's.",
        examples=["just-right"],
    )
    refusal_tau: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Refusal dial: route to the harmless expert alone when its calibrated "
        "router probability for the prompt exceeds this threshold.",
    )
    base: bool = Field(
        False,
        description="Generate with every expert off (the frozen backbone), e.g. to show the base "
        "model's answer beside the composed one. Excludes the other fields.",
    )


class Routing(BaseModel):
    """The routing one choice was generated with (gates in expert order, named)."""

    routing: str = Field(
        description="token (per-layer routers), sequence (one decision per "
        "prompt) or none (the user's weights alone)"
    )
    weight_mode: str
    weights: dict[str, float] | None = Field(None, description="pi as resolved (null: none given)")
    gates: dict[str, float] = Field(
        description="Gates used: fixed per prompt, or (token routing) the mean over routed layers "
        "and generated tokens."
    )
    router_probs: dict[str, float] | None = Field(
        None, description="Calibrated sequence-level router distribution for the prompt."
    )
    per_token: list[dict[str, float]] | None = Field(
        None, description="Gates per generated token (with hhh.per_token)."
    )
    tokens: list[str] | None = Field(
        None, description="The text each generated token added (with hhh.per_token)."
    )
    layers: list[str] | None = Field(
        None, description="Names of the transformer blocks `per_layer` is indexed by."
    )
    per_layer: list[list[list[float]]] | None = Field(
        None,
        description="Token routing with hhh.per_token: per_layer[t][l][k], the gate of expert k "
        "(the order of `gates`) in block l (mean over its routed linears) for generated token t.",
    )
    preset: str | None = Field(None, description="The preset the request named, if any.")
    refusal_dial: dict[str, float | bool] | None = Field(
        None,
        description="With hhh.refusal_tau: {tau, p_harmless, fired}; fired means the harmless "
        "expert alone answered.",
    )


# ------------------------------------------------------------------ requests
class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    """Fields shared by chat and completions requests."""

    model: str | None = Field(None, description="Must name the served model when given.")
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="New tokens at most (default: the server's --max-tokens, capped "
        "by the context window).",
    )
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0: greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_N, description="Choices to generate for each prompt.")
    stop: str | list[str] | None = Field(
        None, description=f"Up to {MAX_STOP} strings; generation stops before the first one."
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Seeds sampling: same request + seed, same answer."
    )
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, description="End-user id (accepted, logged nowhere).")
    logprobs: bool | None = Field(None, description="Not supported: only false / null.")
    hhh: HHHOptions | None = None

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, v: str | list[str] | None) -> list[str] | None:
        stops = [v] if isinstance(v, str) else v
        if stops is None:
            return None
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences, got {len(stops)}")
        if any(s == "" for s in stops):
            raise ValueError("stop sequences must be non-empty strings")
        return stops

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: bool | None) -> bool | None:
        if v:
            raise ValueError("logprobs are not supported by trinityx serve; omit the field")
        return v


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        """The content as one string (text parts joined, as OpenAI concatenates them)."""
        return (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="Alias of max_tokens.")


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(
        description=f"Raw text (no chat template) or a list of up to {MAX_PROMPTS} texts, each "
        "with its own n choices."
    )

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not 1 <= len(v) <= MAX_PROMPTS:
            raise ValueError(f"give 1 to {MAX_PROMPTS} prompts, got {len(v)}")
        return v


# ------------------------------------------------------------------ responses
class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


FinishReason = Literal["stop", "length"]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None
    routing: Routing | None = None


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class ChatCompletionResponse(BaseModel):
    id: str = Field(default_factory=lambda: _id("chatcmpl"))
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: Usage


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    finish_reason: FinishReason | None = None
    logprobs: None = None
    routing: Routing | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: FinishReason | None
    logprobs: None = None
    routing: Routing | None = None


class CompletionResponse(BaseModel):
    """Also the stream chunk of /v1/completions (OpenAI uses one shape for both)."""

    id: str = Field(default_factory=lambda: _id("cmpl"))
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "trinityx"
    experts: list[str] = Field(description="HHH expert names (empty for a plain model)")
    routing: str | None = Field(description="token / sequence / none; null for a plain model")
    context_length: int
    presets: dict[str, dict] = Field(
        default_factory=dict,
        description="Named presets saved in the artifact (use as hhh.preset): weights, mode, "
        "top_k, refusal_tau, description, metrics.",
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    running: int = Field(description="Rows (choices) in the batch being generated")
    waiting: int = Field(description="Requests queued for the next batch")
