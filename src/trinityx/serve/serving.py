"""Chat and text completions: request -> scheduler requests -> OpenAI response or SSE stream.

`Serving` validates what the schema cannot (served model name, max_tokens against the context
window and the server's limits, n, HHH options against this model's experts), tokenises off the
event loop, submits one `GenRequest` per prompt to the scheduler and turns its events into a
response or server-sent events ending in `data: [DONE]`. A client that goes away cancels its
rows (the scheduler drops them at the next step).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from anyio import to_thread
from fastapi import Request

from . import protocol as P
from .sampling import SamplingSettings
from .scheduler import Delta, Failed, Finished, GenRequest, Scheduler
from .served import ServedModel

DISCONNECT_POLL_S = 0.2
"""How often a non-streaming request checks whether its client is still there."""


class APIError(Exception):
    """An error answered in OpenAI's shape with this status (4xx for anything the client sent)."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.info = (
            status,
            P.ErrorInfo(message=message, type=type, param=param, code=code),
        )


@dataclass
class Limits:
    """Server-side bounds (CLI flags), checked per request."""

    default_max_tokens: int = 256  # when the request gives none (capped by the context window)
    max_tokens: int = 4096  # the largest max_tokens a request may ask for
    max_n: int = 8  # the largest n


class Serving:
    def __init__(self, served: ServedModel, scheduler: Scheduler, limits: Limits) -> None:
        self.served, self.scheduler, self.limits = served, scheduler, limits

    # ------------------------------------------------------------------ validation
    def _check(self, req: P._Sampling, max_tokens: int | None, prompt_lens: list[int]) -> int:
        """The max_tokens to use; APIError for anything out of bounds."""
        s, lim = self.served, self.limits
        if req.model is not None and req.model != s.name:
            raise APIError(
                404,
                f"model {req.model!r} is not served here; this server serves "
                f"{s.name!r} (GET /v1/models)",
                "model",
                "model_not_found",
            )
        if req.n > lim.max_n:
            raise APIError(400, f"n={req.n} exceeds this server's limit {lim.max_n}", "n")
        if max_tokens is not None and max_tokens > lim.max_tokens:
            raise APIError(
                400,
                f"max_tokens={max_tokens} exceeds this server's limit {lim.max_tokens}",
                "max_tokens",
            )
        if min(prompt_lens) == 0:
            raise APIError(400, "the prompt is empty (zero tokens)", "prompt")
        longest, ctx = max(prompt_lens), s.context_length
        if longest >= ctx:
            raise APIError(
                400,
                f"this model's context window is {ctx} tokens and the prompt "
                f"has {longest}; shorten the prompt",
                "messages",
                "context_length_exceeded",
            )
        if max_tokens is None:
            max_tokens = min(lim.default_max_tokens, ctx - longest)
        if longest + max_tokens > ctx:
            raise APIError(
                400,
                f"this model's context window is {ctx} tokens; the prompt has {longest} and "
                f"max_tokens is {max_tokens}; lower max_tokens to at most {ctx - longest}",
                "max_tokens",
                "context_length_exceeded",
            )
        try:
            req.hhh = s.expand_preset(req.hhh)  # the scheduler sees concrete options
            s.check_hhh(req.hhh)
        except ValueError as e:
            raise APIError(400, str(e), "hhh") from e
        return max_tokens

    async def _submit(self, req: P._Sampling, prompts: list[list[int]], max_tokens: int):
        """Submit one GenRequest per prompt; returns them and the queue their events land in."""
        loop, q = asyncio.get_running_loop(), asyncio.Queue()

        def emitter(p: int):
            def emit(ev: object) -> None:
                try:
                    loop.call_soon_threadsafe(q.put_nowait, (p, ev))
                except RuntimeError:  # the event loop is gone (server shut down)
                    pass

            return emit

        sampling = SamplingSettings(
            req.temperature, req.top_p, req.presence_penalty, req.frequency_penalty, req.seed
        )
        gens = [
            GenRequest(
                ids,
                max_tokens,
                emitter(p),
                req.n,
                sampling,
                list(req.stop or []),
                req.hhh,
                req.stream,
            )
            for p, ids in enumerate(prompts)
        ]
        for g in gens:
            self.scheduler.submit(g)
        return gens, q

    async def _events(
        self, gens: list[GenRequest], q: asyncio.Queue, request: Request | None
    ) -> AsyncIterator[tuple[int, object]]:
        """(prompt index, event) until every choice finished; cancels the rows when left early.

        request (non-streaming only) is polled for a disconnect; streaming responses are
        cancelled by the ASGI server instead, which lands in the same `finally`.
        """
        left = sum(g.n for g in gens)
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + DISCONNECT_POLL_S
        try:
            while left:
                try:
                    p, ev = await asyncio.wait_for(q.get(), timeout=DISCONNECT_POLL_S)
                except asyncio.TimeoutError:
                    p, ev = None, None
                # polled on a clock, not only when the queue is idle: a fast decode keeps the
                # queue busy for its whole length, and a client that left must not wait it out
                if request is not None and loop.time() >= next_poll:
                    if await request.is_disconnected():
                        return
                    next_poll = loop.time() + DISCONNECT_POLL_S
                if ev is None:
                    continue
                if isinstance(ev, Failed):
                    raise APIError(500, ev.message, type="server_error")
                if isinstance(ev, Finished):
                    left -= 1
                yield p, ev
        finally:
            for g in gens:
                g.cancelled.set()  # no-op for finished rows; frees the rest

    @staticmethod
    def _usage(prompt_lens: list[int], finished: list[Finished]) -> P.Usage:
        c = sum(f.completion_tokens for f in finished)
        return P.Usage(
            prompt_tokens=sum(prompt_lens), completion_tokens=c, total_tokens=sum(prompt_lens) + c
        )

    # ------------------------------------------------------------------ chat
    async def chat(self, req: P.ChatCompletionRequest, request: Request):
        msgs = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in req.messages
        ]
        ids = await to_thread.run_sync(self.served.encode_chat, msgs)
        max_tokens = self._check(req, req.max_completion_tokens or req.max_tokens, [len(ids)])
        gens, q = await self._submit(req, [ids], max_tokens)
        if req.stream:
            return self._chat_stream(req, gens, q, [len(ids)])
        done: dict[int, Finished] = {}
        async for _, ev in self._events(gens, q, request):
            if isinstance(ev, Finished):
                done[ev.index] = ev
        if len(done) < req.n:  # the client went away; nobody reads this
            raise APIError(499, "client disconnected")
        choices = [
            P.ChatChoice(
                index=i,
                message=P.AssistantMessage(content=f.text),
                finish_reason=f.finish_reason,
                routing=f.routing,
            )
            for i, f in sorted(done.items())
        ]
        return P.ChatCompletionResponse(
            model=self.served.name,
            choices=choices,
            usage=self._usage([len(ids)], list(done.values())),
        )

    async def _chat_stream(self, req, gens, q, prompt_lens) -> AsyncIterator[str]:
        cid, created, name = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), self.served.name

        def chunk(choices, usage=None) -> str:
            c = P.ChatCompletionChunk(
                id=cid, created=created, model=name, choices=choices, usage=usage
            )
            return f"data: {c.model_dump_json()}\n\n"

        finished: list[Finished] = []
        for i in range(req.n):
            yield chunk(
                [P.ChatChunkChoice(index=i, delta=P.DeltaMessage(role="assistant", content=""))]
            )
        try:
            async for _, ev in self._events(gens, q, None):
                if isinstance(ev, Delta):
                    yield chunk(
                        [P.ChatChunkChoice(index=ev.index, delta=P.DeltaMessage(content=ev.text))]
                    )
                elif isinstance(ev, Finished):
                    finished.append(ev)
                    yield chunk(
                        [
                            P.ChatChunkChoice(
                                index=ev.index,
                                delta=P.DeltaMessage(),
                                finish_reason=ev.finish_reason,
                                routing=ev.routing,
                            )
                        ]
                    )
        except APIError as e:
            yield f"data: {json.dumps({'error': e.info.model_dump()})}\n\n"
        if req.stream_options is not None and req.stream_options.include_usage:
            yield chunk([], self._usage(prompt_lens, finished))
        yield "data: [DONE]\n\n"

    # ------------------------------------------------------------------ completions
    async def completions(self, req: P.CompletionRequest, request: Request):
        texts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        prompts = await to_thread.run_sync(lambda: [self.served.encode_text(t) for t in texts])
        lens = [len(p) for p in prompts]
        max_tokens = self._check(req, req.max_tokens, lens)
        gens, q = await self._submit(req, prompts, max_tokens)
        if req.stream:
            return self._completion_stream(req, gens, q, lens)
        done: dict[int, Finished] = {}
        async for p, ev in self._events(gens, q, request):
            if isinstance(ev, Finished):
                done[p * req.n + ev.index] = ev
        if len(done) < req.n * len(prompts):
            raise APIError(499, "client disconnected")
        choices = [
            P.CompletionChoice(
                index=i, text=f.text, finish_reason=f.finish_reason, routing=f.routing
            )
            for i, f in sorted(done.items())
        ]
        return P.CompletionResponse(
            model=self.served.name, choices=choices, usage=self._usage(lens, list(done.values()))
        )

    async def _completion_stream(self, req, gens, q, prompt_lens) -> AsyncIterator[str]:
        cid, created, name = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time()), self.served.name

        def chunk(choices, usage=None) -> str:
            c = P.CompletionResponse(
                id=cid, created=created, model=name, choices=choices, usage=usage
            )
            return f"data: {c.model_dump_json()}\n\n"

        finished: list[Finished] = []
        try:
            async for p, ev in self._events(gens, q, None):
                i = p * req.n + ev.index
                if isinstance(ev, Delta):
                    yield chunk([P.CompletionChoice(index=i, text=ev.text, finish_reason=None)])
                elif isinstance(ev, Finished):
                    finished.append(ev)
                    yield chunk(
                        [
                            P.CompletionChoice(
                                index=i, text="", routing=ev.routing, finish_reason=ev.finish_reason
                            )
                        ]
                    )
        except APIError as e:
            yield f"data: {json.dumps({'error': e.info.model_dump()})}\n\n"
        if req.stream_options is not None and req.stream_options.include_usage:
            yield chunk([], self._usage(prompt_lens, finished))
        yield "data: [DONE]\n\n"
