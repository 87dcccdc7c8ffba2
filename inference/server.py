"""The one long-lived process that owns the engines, serving an OpenAI-compatible API on localhost.

Web and worker processes never load a model: they call this server. Loading happens in the background after
start-up so /health answers at once and /ready tells when every model is loaded and warmed up.

Only the app's own processes may call it (`_Guard`): every request but /health carries the key they share
(`Authorization: Bearer`, inference.config.inference_api_key), names the server by a host it is known by (a web page
whose name an attacker re-pointed at 127.0.0.1 is refused), and a POST says its body is JSON (a page's form or a
text/plain fetch, which a browser sends without asking first, is refused).
"""

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial, wraps
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route as HttpRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from inference.config import ModelEntry, ServingConfig
from inference.factory import build_engine
from inference.router import RoutedModel, Router
from inference.types import (
    Delta,
    EngineError,
    EngineUnavailable,
    GenerationParams,
    RequestRejected,
    UnknownModel,
    Usage,
)

logger = logging.getLogger("inference.server")

WARMUP_MESSAGES = [{"role": "user", "content": "Say OK."}]


@dataclass(kw_only=True)
class ServerState:
    router: Router
    entries: tuple[ModelEntry, ...]
    loading: asyncio.Task | None = None
    ready: bool = False


def create_app(config: ServingConfig) -> ASGIApp:
    if not config.api_key:
        raise ValueError("the serving process needs an API key (inference.config.inference_api_key)")
    router = Router(
        [
            RoutedModel(name=entry.name, engine=None, limits=entry.limits, down_reason="loading")
            for entry in config.models
        ]
    )
    state = ServerState(router=router, entries=config.models)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        state.loading = asyncio.create_task(_load_all(state, warmup=config.warmup))
        yield
        state.loading.cancel()
        for routed in router.models:
            if routed.engine is not None:
                await routed.engine.close()

    app = Starlette(
        routes=[
            HttpRoute("/health", lambda request: JSONResponse({"status": "alive"})),
            HttpRoute("/ready", lambda request: _ready(state)),
            HttpRoute(
                "/metrics",
                lambda request: Response(router.metrics.exposition(), media_type="text/plain; version=0.0.4"),
            ),
            HttpRoute("/v1/models", lambda request: _models(state)),
            HttpRoute("/tokenize", partial(_tokenize, state), methods=["POST"]),
            HttpRoute("/v1/completions", partial(_completions, state), methods=["POST"]),
            HttpRoute("/v1/chat/completions", partial(_chat_completions, state), methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.server = state
    return _Guard(app, api_key=config.api_key, allowed_hosts=config.allowed_hosts)


# Liveness only ("alive", nothing about models or the machine): a supervisor may ask it without the key.
_OPEN_PATHS = frozenset({"/health"})


class _Guard:
    """Refuses, before any route runs: a Host the server is not known by (400), a missing or wrong key (401), a POST
    whose body is not declared JSON (415). Checked in that order, so a caller without the key learns nothing more."""

    def __init__(self, app: Starlette, *, api_key: str, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.state = app.state
        self._key = api_key.encode()
        self._hosts = frozenset(host.lower() for host in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        if _host_name(headers.get("host", "")) not in self._hosts:
            return _error(400, "this server does not answer to that host name", "invalid_host")
        if scope["path"] not in _OPEN_PATHS and not self._key_matches(headers.get("authorization", "")):
            response = _error(401, "a valid API key is required (Authorization: Bearer <key>)", "unauthorized")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if scope["method"] == "POST":
            media_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                return _error(415, "the request body must be sent as Content-Type: application/json", "invalid_request")
        return None

    def _key_matches(self, authorization: str) -> bool:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(presented.strip().encode("latin-1"), self._key)


def _host_name(host: str) -> str:
    """The name in a Host header, without its port: "127.0.0.1:8765" → "127.0.0.1", "[::1]:8765" → "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


async def _load_all(state: ServerState, *, warmup: bool) -> None:
    """Load each model in route order (in a thread: loading blocks for seconds to minutes), then warm it up."""
    for entry, routed in zip(state.entries, state.router.models):
        logger.info("loading %s on %s", entry.name, type(entry.engine).__name__)
        started = time.perf_counter()
        try:
            engine = await asyncio.to_thread(build_engine, entry.engine)
        except Exception as error:  # a model that cannot load is reported, the others still serve
            routed.down_reason = f"failed to load: {error}"
            logger.error("could not load %s: %s", entry.name, error)
            continue
        load_seconds = getattr(engine, "load_seconds", None) or time.perf_counter() - started
        state.router.metrics.load_seconds.labels(model=entry.name).set(load_seconds)
        routed.engine = engine
        if warmup:
            # The first generation pays for lazy allocations and kernel compilation; a user should not.
            prompt = engine.chat_template.render(WARMUP_MESSAGES)
            async for _ in engine.stream(prompt, GenerationParams(max_tokens=1, temperature=0.0)):
                pass
        routed.down_reason = ""
        logger.info("%s ready after %.1f s", entry.name, time.perf_counter() - started)
    state.ready = all(routed.engine is not None for routed in state.router.models)


def _ready(state: ServerState) -> JSONResponse:
    # Ready once every model has loaded and warmed up (the router alone knows only that they loaded).
    models = state.router.model_states()
    return JSONResponse({"ready": state.ready, "models": models}, status_code=200 if state.ready else 503)


def _models(state: ServerState) -> JSONResponse:
    return JSONResponse({"object": "list", "data": state.router.describe()})


class _InvalidRequest(ValueError):
    pass


def _refusing_bad_requests(handler):
    """A body that is not a JSON object, or parameters of the wrong type, get a 400 with the reason, not a 500."""

    @wraps(handler)
    async def checked(state: ServerState, request: Request) -> Response:
        try:
            body = await request.json()
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
            return _error(400, "the request body must be JSON", "invalid_request")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object", "invalid_request")
        try:
            return await handler(state, body)
        except UnknownModel as error:
            return _error(404, str(error), "model_not_found")
        except (_InvalidRequest, TypeError, ValueError, OverflowError) as error:  # OverflowError: int(1e400)
            return _error(400, f"invalid request: {error}", "invalid_request")

    return checked


@_refusing_bad_requests
async def _tokenize(state: ServerState, body: dict[str, Any]) -> JSONResponse:
    routed = state.router.model_named(body.get("model") or state.router.models[0].name)
    if routed.engine is None:
        return _error(503, f"{routed.name} is {routed.unavailable_reason()}", "unavailable")
    if not isinstance(body.get("prompt", ""), str):
        raise _InvalidRequest("prompt must be one string")
    count = routed.engine.count_tokens(body.get("prompt", ""))
    return JSONResponse({"count": count, "max_model_len": routed.engine.info.context_length})


def _params(body: dict[str, Any]) -> GenerationParams:
    defaults = GenerationParams()
    stop = body.get("stop") or ()
    return GenerationParams(
        temperature=float(body.get("temperature", defaults.temperature)),
        top_p=float(body.get("top_p", defaults.top_p)),
        top_k=int(body.get("top_k", defaults.top_k)),
        max_tokens=int(body.get("max_tokens", defaults.max_tokens)),
        repetition_penalty=float(body.get("repetition_penalty", defaults.repetition_penalty)),
        seed=body.get("seed"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, list) else stop,
    )


@_refusing_bad_requests
async def _completions(state: ServerState, body: dict[str, Any]) -> Response:
    if not isinstance(body.get("prompt"), str):
        raise _InvalidRequest("prompt must be one string, rendered with the model's chat template")
    deltas = state.router.stream_prompt(body.get("model", ""), body["prompt"], _params(body))
    return await _respond(deltas, body, kind="text_completion")


@_refusing_bad_requests
async def _chat_completions(state: ServerState, body: dict[str, Any]) -> Response:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _InvalidRequest("messages must be a non-empty list")
    model = body.get("model") or "auto"
    template_options = body.get("chat_template_kwargs") or {}
    if not isinstance(template_options, dict):
        raise _InvalidRequest("chat_template_kwargs must be an object")
    enable_thinking = bool(template_options.get("enable_thinking", False))
    deltas = state.router.stream_chat(
        messages, _params(body), enable_thinking=enable_thinking, start_at=None if model == "auto" else model
    )
    return await _respond(deltas, body, kind="chat.completion")


async def _respond(deltas: AsyncIterator[Delta], body: dict[str, Any], *, kind: str) -> Response:
    """Start the engine before answering, so a request nobody can serve gets a status code, not a broken stream."""
    try:
        first = await anext(deltas)
    except UnknownModel:
        raise
    except RequestRejected as error:
        return _error(400, str(error), "invalid_request")
    except EngineUnavailable as error:
        return _error(503, str(error), "unavailable", retry_after=error.retry_after_seconds)
    except EngineError as error:
        return _error(500, str(error), "engine_error")
    request_id = f"{'chatcmpl' if kind == 'chat.completion' else 'cmpl'}-{uuid.uuid4().hex}"
    route = first.route
    headers = {"X-KB-Route": json.dumps(_route_payload(route))} if route else {}
    if body.get("stream"):
        return StreamingResponse(
            _sse(first, deltas, request_id=request_id, kind=kind), media_type="text/event-stream", headers=headers
        )
    return await _whole(first, deltas, request_id=request_id, kind=kind, headers=headers)


def _chunk(
    *,
    request_id: str,
    kind: str,
    model: str,
    delta: Delta | None,
    finish: str | None = None,
    usage: dict | None = None,
    route: dict | None = None,
) -> dict[str, Any]:
    if kind == "chat.completion":
        content: dict[str, Any] = {}
        if delta is not None and delta.text:
            content["reasoning_content" if delta.channel == "thinking" else "content"] = delta.text
        choice = {"index": 0, "delta": content, "finish_reason": finish}
        object_name = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": delta.text if delta is not None else "", "finish_reason": finish}
        object_name = "text_completion"
    chunk = {
        "id": request_id,
        "object": object_name,
        "created": int(time.time()),
        "model": model,
        "choices": [choice] if usage is None else [],
    }
    if usage is not None:
        chunk["usage"] = usage
    if route is not None:
        chunk["kb_route"] = route
    return chunk


async def _sse(first: Delta, deltas: AsyncIterator[Delta], *, request_id: str, kind: str) -> AsyncIterator[str]:
    route = first.route
    model = route.model if route else ""
    yield _event(_chunk(request_id=request_id, kind=kind, model=model, delta=None, route=_route_payload(route)))
    usage = None
    try:
        async for delta in deltas:
            if delta.usage is not None:
                usage = delta.usage
            elif delta.text:
                yield _event(_chunk(request_id=request_id, kind=kind, model=model, delta=delta))
    except EngineError as error:
        yield _event({"error": {"message": str(error), "type": "engine_error"}})
        yield "data: [DONE]\n\n"
        return
    yield _event(_chunk(request_id=request_id, kind=kind, model=model, delta=None, finish="stop"))
    if usage is not None:
        yield _event(_chunk(request_id=request_id, kind=kind, model=model, delta=None, usage=_usage_payload(usage)))
    yield "data: [DONE]\n\n"


async def _whole(
    first: Delta, deltas: AsyncIterator[Delta], *, request_id: str, kind: str, headers: dict[str, str]
) -> JSONResponse:
    texts = {"answer": [], "thinking": []}
    usage = None
    try:
        async for delta in deltas:
            if delta.usage is not None:
                usage = delta.usage
            elif delta.text:
                texts[delta.channel].append(delta.text)
    except EngineError as error:
        return _error(500, str(error), "engine_error")
    answer = "".join(texts["answer"])
    if kind == "chat.completion":
        message: dict[str, Any] = {"role": "assistant", "content": answer}
        if texts["thinking"]:
            message["reasoning_content"] = "".join(texts["thinking"])
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "stop"}
    else:
        choice = {"index": 0, "text": answer, "finish_reason": "stop"}
    route = first.route
    return JSONResponse(
        {
            "id": request_id,
            "object": kind,
            "created": int(time.time()),
            "model": route.model if route else "",
            "choices": [choice],
            "usage": _usage_payload(usage) if usage else None,
            "kb_route": _route_payload(route),
        },
        headers=headers,
    )


def _usage_payload(usage: Usage) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_prompt_tokens is not None:  # OpenAI's field for prompt tokens read from the cache
        payload["prompt_tokens_details"] = {"cached_tokens": usage.cached_prompt_tokens}
    return payload


def _route_payload(route) -> dict[str, Any] | None:
    if route is None:
        return None
    return {"model": route.model, "backend": route.backend, "skipped": list(route.skipped)}


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _error(status: int, message: str, kind: str, *, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status, headers=headers)
