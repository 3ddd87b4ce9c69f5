"""OpenAI-compatible HTTP server for a composed TrinityX model.

`POST /v1/chat/completions` and `POST /v1/completions` accept the usual OpenAI fields plus
`hhh_weights` ({"helpful": w, ...}), `weight_mode` ("multiply" | "fixed"), `allow_negative` and
`top_k_experts`; responses carry the routing weights used under `trinityx`. Greedy decoding
(temperature 0) is what TrinityX evaluates; `temperature`/`top_p` > 0 sample instead.
One RoutingState per model, so requests are served one at a time behind a lock.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class _Common(BaseModel):
    model: str | None = None
    max_tokens: int = Field(128, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    hhh_weights: dict[str, float] | None = None
    weight_mode: Literal["multiply", "fixed"] = "multiply"
    allow_negative: bool = False
    top_k_experts: int | None = Field(None, ge=1)


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(_Common):
    prompt: str | list[str]


def create_app(model: Any, model_name: str = "trinityx") -> FastAPI:
    """Build the app around a loaded `TrinityXModel` (injected, so tests can pass a tiny one)."""
    app = FastAPI(title="TrinityX", version="0.1.0")
    lock = threading.Lock()

    def _generate(prompts: list, req: _Common) -> tuple[list[str], list[dict]]:
        kwargs: dict[str, Any] = {}
        if req.temperature > 0:
            kwargs = {"do_sample": True, "temperature": req.temperature, "top_p": req.top_p}
        try:
            with lock:
                res = model.generate(
                    prompts,
                    hhh_weights=req.hhh_weights,
                    weight_mode=req.weight_mode,
                    allow_negative=req.allow_negative,
                    top_k=req.top_k_experts,
                    max_new_tokens=req.max_tokens,
                    **kwargs,
                )
        except ValueError as e:  # bad weights, unknown dimension, negation not allowed, ...
            raise HTTPException(status_code=400, detail=str(e)) from e
        return res.texts, res.routing

    def _usage(n_prompt: int, texts: list[str]) -> dict:
        n_out = sum(len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        return {"prompt_tokens": n_prompt, "completion_tokens": n_out,
                "total_tokens": n_prompt + n_out}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "experts": model.expert_names, "routing": model.routing}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [
            {"id": model_name, "object": "model", "owned_by": "trinityx",
             "experts": model.expert_names, "routing": model.routing}
        ]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict:
        if req.messages[-1].role != "user":
            raise HTTPException(400, "messages must end with a user turn")
        msgs = [m.model_dump() for m in req.messages]
        texts, routing = _generate([msgs], req)
        n_prompt = len(model.encode([msgs])[0][0])
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": texts[0]}}],
            "usage": _usage(n_prompt, texts),
            "trinityx": {"routing": routing[0]},
        }

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> dict:
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts:
            raise HTTPException(400, "prompt must not be empty")
        texts, routing = _generate(prompts, req)
        n_prompt = int(model.encode(prompts)[1].sum())
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": i, "text": t, "finish_reason": "stop"}
                        for i, t in enumerate(texts)],
            "usage": _usage(n_prompt, texts),
            "trinityx": {"routing": routing},
        }

    return app


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load a composed artifact and serve it with uvicorn (loopback by default)."""
    import uvicorn

    from trinityx.model.composed import TrinityXModel

    model = TrinityXModel.from_pretrained(model_dir)
    uvicorn.run(create_app(model, model_name=str(model_dir)), host=host, port=port)
