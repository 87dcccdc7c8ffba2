"""The OpenAI-compatible API: answers from what the token's user may read, by the ask flow's own path
(kb.chat.services.answer_events), and embeddings with the knowledge base's embedding model."""

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from embedding.encoders import chunking_tokenizer
from inference.types import EngineError
from kb.accounts.models import ApiToken
from kb.api.auth import api_endpoint
from kb.api.bodies import (
    ChatRequest,
    chat_request_of,
    embeddings_request_of,
    json_body,
    search_request_of,
)
from kb.api.errors import ApiError, invalid
from kb.api.openapi import openapi_description
from kb.audit.models import QueryRecord
from kb.chat.context import PromptPassage
from kb.chat.generation import answer_backend
from kb.chat.services import AnswerEvent, Ask, QuestionScope, answer_events, passages_cited, question_text_checked
from kb.documents.embedding_models import active_embedding_model
from kb.search.selectors import PassageFilters, PassageHit, embed_query
from kb.search.services import passages_search_recorded

CHANNEL = "api"
# Events after which the answer's status is known: the response starts with them (or is a refusal).
_DECIDING = {"token", "thinking", "busy", "done"}


# The description is public: its model names are asked of the answering backend at most this often, so that
# requests without a token never reach the model server one for one.
MODEL_NAMES_KEPT_SECONDS = 30.0
_model_names_read: tuple[float, list[str] | None] = (float("-inf"), None)


@require_GET
def openapi_json(request: HttpRequest) -> JsonResponse:
    """The API's description, public like any client's documentation, naming the models this server has."""
    return JsonResponse(
        openapi_description(chat_models=_chat_model_names(), embedding_model=active_embedding_model().name)
    )


def _chat_model_names() -> list[str] | None:
    """The answering models' names, read again after MODEL_NAMES_KEPT_SECONDS; None while the backend is down."""
    global _model_names_read
    read_at, names = _model_names_read
    if time.monotonic() - read_at >= MODEL_NAMES_KEPT_SECONDS:
        try:
            names = [model["id"] for model in answer_backend().describe()]
        except EngineError:
            names = None
        _model_names_read = (time.monotonic(), names)
    return names


def _route_models() -> list[dict]:
    try:
        return answer_backend().describe()
    except EngineError as failure:
        raise ApiError(503, str(failure), type="server_error", code="model_unavailable") from failure


@api_endpoint(method="GET")
async def models(request: HttpRequest, token: ApiToken) -> JsonResponse:
    """The route's models (`model` of a chat completion) and the embedding model."""
    route = await asyncio.to_thread(_route_models)
    embedding = await sync_to_async(active_embedding_model)()
    data = [
        {
            "id": model["id"],
            "object": "model",
            "created": 0,
            "owned_by": "kb",
            "kb_kind": "chat",
            "kb_state": model.get("state", "unknown"),
            "kb_context_length": model.get("max_model_len"),
        }
        for model in route
    ]
    data.append(
        {
            "id": embedding.name,
            "object": "model",
            "created": 0,
            "owned_by": "kb",
            "kb_kind": "embedding",
            "kb_dimensions": embedding.dimensions,
        }
    )
    return JsonResponse({"object": "list", "data": data})


def passage_json(hit: PassageHit, *, number: int | None = None, text: str | None = None) -> dict:
    """A passage as the API returns it: where it is (document, collection, span of the version's text) and the
    page that shows it."""
    passage = {
        "chunk_id": hit.chunk_id,
        "document_id": hit.document_id,
        "version_id": hit.version_id,
        "document_title": hit.document_title,
        "collection": hit.collection_name,
        "heading": hit.heading,
        "text": hit.text if text is None else text,
        "char_start": hit.char_start,
        "char_end": hit.char_end,
        "url": reverse("search:passage", args=[hit.chunk_id]),
    }
    return passage if number is None else {"number": number, **passage}


def _sources(passages: tuple[PromptPassage, ...]) -> list[dict]:
    return [passage_json(p.hit, number=p.number, text=p.text) for p in passages]


def _citations(passages: tuple[PromptPassage, ...], record: QueryRecord) -> list[dict]:
    return _sources(tuple(passages_cited(passages=passages, record=record)))


def _usage(record: QueryRecord) -> dict:
    return {
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "total_tokens": record.prompt_tokens + record.completion_tokens,
    }


def _finish_reason(record: QueryRecord) -> str:
    max_tokens = record.generation_params.get("max_tokens")
    return "length" if max_tokens and record.completion_tokens >= max_tokens else "stop"


def _busy(message: str) -> ApiError:
    return ApiError(503, message, type="server_error", code="model_busy", headers={"Retry-After": "5"})


def _failed(record: QueryRecord) -> ApiError:
    return ApiError(502, f"The model failed: {record.error}", type="server_error", code="model_error")


@dataclass
class _Answer:
    """What is known of an answer once its status is: the events so far and the stream of the rest."""

    started: list[AnswerEvent]
    rest: AsyncIterator[AnswerEvent]


async def _answer_started(ask: Ask, token: ApiToken) -> _Answer:
    """Retrieval done and the model's first token come (or its refusal): a model that is busy or fails before it
    answers is a status code, not a broken stream."""
    events = answer_events(user=token.user, ask=ask)
    started: list[AnswerEvent] = []
    async for event in events:
        started.append(event)
        if event.kind in _DECIDING:
            break
    last = started[-1]
    if last.kind == "busy" or (last.kind == "done" and last.record.error):
        await events.aclose()
        raise _busy(last.text) if last.kind == "busy" else _failed(last.record)
    return _Answer(started=started, rest=events)


async def _scope_checked(collection_ids: tuple[int, ...], token: ApiToken) -> dict:
    """The scope as the ask flow stores it; a collection the user may not read is refused like one that never was."""
    try:
        return await sync_to_async(QuestionScope(collection_ids=collection_ids).checked_for)(token.user)
    except ValidationError as error:
        raise invalid(" ".join(error.messages), param="kb_scope.collections") from None


@api_endpoint(method="POST", scope=ApiToken.Scope.ASK)
async def chat_completions(request: HttpRequest, token: ApiToken) -> HttpResponse:
    """An answer to the last user message from the passages the token's user may read, streamed (SSE) or whole,
    recorded in the audit trail as the browser's answers are (channel "api")."""
    chat = chat_request_of(json_body(request), thinking_default=settings.KB_LLM_ENABLE_THINKING)
    try:
        question = question_text_checked(chat.question)
    except ValidationError as error:
        raise invalid(" ".join(error.messages), param="messages") from None
    scope = await _scope_checked(chat.collection_ids, token)
    route = await asyncio.to_thread(_route_models)
    if chat.model not in {model["id"] for model in route}:
        raise ApiError(
            404, f"No model named {chat.model!r} answers here; see /v1/models.", code="model_not_found", param="model"
        )
    ask = Ask(
        text=question,
        scope=scope,
        turns=chat.turns,
        thinking=chat.thinking,
        model=chat.model,
        max_tokens=chat.max_tokens,
        channel=CHANNEL,
        recorded_as={"api_token": token.prefix},
    )
    answer = await _answer_started(ask, token)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if chat.stream:
        response = StreamingHttpResponse(
            _completion_chunks(answer, chat, completion_id), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    return await _completion_whole(answer, chat, completion_id)


async def _completion_whole(answer: _Answer, chat: ChatRequest, completion_id: str) -> JsonResponse:
    thinking: list[str] = []
    async for event in _all_events(answer):
        if event.kind == "thinking":
            thinking.append(event.text)
        elif event.kind == "done":
            done = event
    record = done.record
    if record.error:
        raise _failed(record)
    message = {"role": "assistant", "content": done.text}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    return JsonResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": record.model or chat.model,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(record)}],
            "usage": _usage(record),
            "kb_citations": _citations(done.passages, record),
            "kb_sources": _sources(done.passages),
            "kb_query_id": record.pk,
        }
    )


async def _all_events(answer: _Answer) -> AsyncIterator[AnswerEvent]:
    async with contextlib.aclosing(answer.rest):
        for event in answer.started:
            yield event
        async for event in answer.rest:
            yield event


async def _completion_chunks(answer: _Answer, chat: ChatRequest, completion_id: str) -> AsyncIterator[str]:
    """OpenAI's chunks, `data: {...}` each, closed by `data: [DONE]`; the last chunk with a finish reason carries
    the citations and sources, then usage when the client asked for it (`stream_options.include_usage`)."""

    def chunk(delta: dict, *, finish: str | None = None, model: str = chat.model, **extra) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return _sse(payload)

    yield chunk({"role": "assistant", "content": ""})
    async for event in _all_events(answer):
        if event.kind == "token":
            yield chunk({"content": event.text})
        elif event.kind == "thinking":
            yield chunk({"reasoning_content": event.text})
        elif event.kind == "done":
            record = event.record
            if record.error:  # the model failed mid-answer: OpenAI's clients raise this
                yield _sse(_failed(record).as_json())
                break
            model = record.model or chat.model
            yield chunk(
                {},
                finish=_finish_reason(record),
                model=model,
                kb_citations=_citations(event.passages, record),
                kb_sources=_sources(event.passages),
                kb_query_id=record.pk,
            )
            if chat.include_usage:
                yield _sse(
                    {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [],
                        "usage": _usage(record),
                    }
                )
    yield "data: [DONE]\n\n"


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


@api_endpoint(method="POST", scope=ApiToken.Scope.EMBEDDINGS)
async def embeddings(request: HttpRequest, token: ApiToken) -> JsonResponse:
    """Vectors from the embedding model that embeds the knowledge base's passages and questions: unit length,
    comparable with each other by their dot product."""
    wanted = embeddings_request_of(json_body(request))
    model = await sync_to_async(active_embedding_model)()
    if wanted.model != model.name:
        raise ApiError(
            404,
            f"The embedding model here is {model.name!r}; see /v1/models.",
            code="model_not_found",
            param="model",
        )
    if wanted.dimensions is not None and wanted.dimensions != model.dimensions:
        raise invalid(f"{model.name} gives vectors of {model.dimensions} dimensions only.", param="dimensions")
    vectors, tokens = await asyncio.to_thread(_embedded, wanted.texts, model.path)
    return JsonResponse(
        {
            "object": "list",
            "model": model.name,
            "data": [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": base64.b64encode(vector.astype("<f4").tobytes()).decode()
                    if wanted.base64
                    else vector.astype(float).tolist(),
                }
                for index, vector in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _embedded(texts: list[str], model_path: str) -> tuple[list[np.ndarray], int]:
    """Each text as search embeds a question (no database: this runs in a thread), and their tokens."""
    tokenizer = chunking_tokenizer(model_path)
    tokens = sum(len(encoding.ids) for encoding in tokenizer.encode_batch(texts))
    return [embed_query(text, model_path=model_path) for text in texts], tokens


@api_endpoint(method="POST", scope=ApiToken.Scope.SEARCH)
async def search(request: HttpRequest, token: ApiToken) -> JsonResponse:
    """Ranked passages the token's user may read, as the Search page finds them (no model involved); recorded in
    the audit trail as the page's searches are (channel "api-search")."""
    wanted = search_request_of(json_body(request))
    await _scope_checked(wanted.collection_ids, token)
    hits = await sync_to_async(passages_search_recorded)(
        user=token.user,
        query_text=wanted.query,
        k=wanted.k,
        mode=wanted.mode,
        filters=PassageFilters(collection_ids=wanted.collection_ids),
        channel="api-search",
    )
    return JsonResponse({"object": "list", "data": [{**passage_json(hit), "score": hit.score} for hit in hits]})
