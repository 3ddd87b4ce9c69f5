"""OpenAI-compatible HTTP server for a TrinityX model (or any baseline the harness can build).

The playground page is served at `/` (serve/static/). Endpoints: `POST /v1/chat/completions` and `POST /v1/completions` (JSON or server-sent events
ending in `data: [DONE]`), `GET /v1/models`, `GET /health`. Requests may carry the `hhh`
extension (per-request HHH weights, Eq. gates); every choice reports the `routing` it was
generated with. Concurrent requests are batched by one scheduler thread (serve/scheduler.py),
each row keeping its own weights, sampling settings and stop strings. Every error is a JSON body
in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`); anything the client sent
wrong is a 4xx, never a 500. With an API key set, /v1/* needs `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import protocol as P
from .scheduler import Scheduler
from .served import ServedModel, load_served
from .serving import APIError, Limits, Serving

log = logging.getLogger(__name__)

API_KEY_ENV = "TRINITYX_API_KEY"
STATIC = Path(__file__).parent / "static"  # the playground (package data, no build step)
_BEARER = HTTPBearer(auto_error=False, description=f"--api-key or env {API_KEY_ENV}")
_ERRORS = {
    code: {"model": P.ErrorResponse, "description": desc}
    for code, desc in [
        (400, "Invalid request"),
        (401, "Missing or wrong API key"),
        (404, "Unknown model"),
        (500, "Generation failed"),
    ]
}
_SSE = {
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
    "description": "JSON, or with stream=true server-sent events ending in data: [DONE]",
}


def _error(status: int, info: P.ErrorInfo) -> JSONResponse:
    return JSONResponse(P.ErrorResponse(error=info).model_dump(), status_code=status)


def _validation_info(exc: RequestValidationError) -> P.ErrorInfo:
    """The first schema error as OpenAI reports it: a message and the offending param."""
    errs = exc.errors()
    if not errs:
        return P.ErrorInfo(message="invalid request")
    e = errs[0]
    loc = [str(x) for x in e.get("loc", ()) if x != "body"]
    if e.get("type") == "json_invalid":
        return P.ErrorInfo(message=f"the request body is not valid JSON: {e.get('msg')}")
    param = ".".join(loc) or None
    if param is None:
        return P.ErrorInfo(
            message="the request body must be a JSON object (Content-Type: "
            f"application/json): {e.get('msg')}"
        )
    msg = str(e.get("msg", "invalid value"))
    if e.get("type") == "extra_forbidden":
        msg = "unknown or unsupported field; remove it (see GET /openapi.json)"
    more = f" (and {len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
    return P.ErrorInfo(message=f"{param or 'body'}: {msg}{more}", param=param)


def create_app(
    served: ServedModel,
    *,
    max_batch: int = 8,
    max_wait_ms: float = 10.0,
    api_key: str | None = None,
    limits: Limits | None = None,
) -> FastAPI:
    """Build the app around a loaded `ServedModel` (injected, so tests pass a tiny one).

    The scheduler thread starts and stops with the app's lifespan.
    """
    scheduler = Scheduler(served, max_batch, max_wait_ms)
    serving = Serving(served, scheduler, limits or Limits())
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()

    app = FastAPI(
        title="TrinityX",
        version="0.1.0",
        lifespan=lifespan,
        description=__doc__.split("\n\n", 1)[1],
    )
    app.state.scheduler = scheduler

    async def check_key(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]):
        if api_key is None:
            return
        if cred is None or not secrets.compare_digest(cred.credentials.encode(), api_key.encode()):
            raise APIError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return _error(exc.status, exc.info)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_info(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, P.ErrorInfo(message=str(exc.detail), type=kind))

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return _error(
            500, P.ErrorInfo(message=f"internal error: {type(exc).__name__}", type="server_error")
        )

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        """The playground page (serve/static/): plain files, so it works offline."""
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", response_model=P.Health)
    async def health() -> P.Health:
        return P.Health(model=served.name, running=scheduler.running, waiting=scheduler.waiting)

    @app.get(
        "/v1/models",
        response_model=P.ModelList,
        responses=_ERRORS,
        dependencies=[Depends(check_key)],
    )
    async def models() -> P.ModelList:
        card = P.ModelCard(
            id=served.name,
            created=created,
            experts=served.expert_names,
            routing=served.routing,
            context_length=served.context_length,
            presets={n: p.to_dict() for n, p in served.presets.items()},
        )
        return P.ModelList(data=[card])

    @app.get(
        "/v1/models/{model_id:path}",
        response_model=P.ModelCard,
        responses=_ERRORS,
        dependencies=[Depends(check_key)],
    )
    async def model_card(model_id: str) -> P.ModelCard:
        if model_id != served.name:
            raise APIError(
                404,
                f"model {model_id!r} is not served here; this server serves {served.name!r}",
                "model",
                "model_not_found",
            )
        return (await models()).data[0]

    @app.post(
        "/v1/chat/completions",
        response_model=P.ChatCompletionResponse,
        responses={200: _SSE, **_ERRORS},
        dependencies=[Depends(check_key)],
    )
    async def chat(req: P.ChatCompletionRequest, request: Request):
        out = await serving.chat(req, request)
        if req.stream:
            return StreamingResponse(out, media_type="text/event-stream")
        return out

    @app.post(
        "/v1/completions",
        response_model=P.CompletionResponse,
        responses={200: _SSE, **_ERRORS},
        dependencies=[Depends(check_key)],
    )
    async def completions(req: P.CompletionRequest, request: Request):
        out = await serving.completions(req, request)
        if req.stream:
            return StreamingResponse(out, media_type="text/event-stream")
        return out

    return app


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` with uvicorn on an ephemeral port in a background thread; yields its base URL.

    For tests, benchmarks and notebooks: the real server (HTTP parsing, SSE, disconnects), not
    an in-process test client. The server and its scheduler stop when the block ends.
    """
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="trinityx-uvicorn", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("uvicorn did not start (see the log above)")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serve(
    model: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_batch: int = 8,
    max_wait_ms: float = 10.0,
    config: str | None = None,
    name: str | None = None,
    limits: Limits | None = None,
) -> None:
    """Load MODEL (artifact folder or eval-harness spec) and serve it with uvicorn."""
    import uvicorn

    served = load_served(model, config, name)
    key = api_key or os.environ.get(API_KEY_ENV) or None
    if key is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without an API key (--api-key or %s)", host, API_KEY_ENV)
    app = create_app(
        served, max_batch=max_batch, max_wait_ms=max_wait_ms, api_key=key, limits=limits
    )
    uvicorn.run(app, host=host, port=port)
