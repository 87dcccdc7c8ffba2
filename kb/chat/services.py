"""Answering a question: retrieve what the user may read, prompt the local LLM, stream, record."""

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from extract.logs.severities import SEVERITIES
from inference.engine import ChatBackend
from inference.types import EngineError, EngineUnavailable, GenerationParams, Route, Usage
from kb.accounts.models import User
from kb.audit.models import AuditEvent, QueryRecord
from kb.audit.selectors import prefill_tokens_per_second_measured
from kb.audit.services import audit_record, query_record_create
from kb.chat.citations import cited_numbers
from kb.chat.context import (
    TURN_OVERHEAD_TOKENS,
    ContextBudget,
    PromptPassage,
    answer_messages,
    estimated_token_counter,
    passages_packed,
    turns_within_budget,
)
from kb.chat.generation import AnsweringModel, answer_backend, answering_model
from kb.chat.models import Conversation, Question
from kb.chat.selectors import (
    Turn,
    conversation_get_for_owner,
    conversation_turns_before,
    question_stop_requested,
)
from kb.documents.selectors import collections_readable_by
from kb.platform.metrics import (
    ANSWER_GENERATION_SECONDS,
    ANSWER_OUTPUT_TOKENS,
    ANSWER_TIME_TO_FIRST_TOKEN_SECONDS,
    ANSWERS,
    RETRIEVAL_SECONDS,
)
from kb.search.selectors import (
    PassageFilters,
    close_enough_to_answer,
    document_passages_for_user,
    passages_search_with_filter_for_user,
)

MAX_QUESTION_CHARS = 2000
NO_SOURCES_ANSWER = "The documents you can read do not say: no passage matches this question."
STOP_POLL_SECONDS = 0.5
REWRITE_PROMPT = (
    "Rewrite the user's last question so that it can be understood without the conversation before it: name what "
    "it refers to. Keep its language. Reply with the rewritten question only."
)
# Qwen3.5's recommended sampling for quick (non-thinking) mode, short: the rewrite is one question.
REWRITE_PARAMS = GenerationParams(temperature=0.7, top_p=0.8, top_k=20, max_tokens=100)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerEvent:
    kind: Literal["sources", "waiting", "thinking", "token", "busy", "done"]
    text: str = ""
    passages: tuple[PromptPassage, ...] = ()
    record: QueryRecord | None = None


def answer_citations(*, answer: str, passages: list[PromptPassage]) -> tuple[list[dict], list[int]]:
    """The passages an answer cites as [n] in its prose (kb.chat.citations), in order of first citation, and numbers
    it cites that it was not given."""
    by_number = {p.number: p for p in passages}
    cited: list[dict] = []
    unknown: list[int] = []
    for number in cited_numbers(answer):
        if number in by_number:
            cited.append(
                {
                    "number": number,
                    "chunk_id": by_number[number].hit.chunk_id,
                    "document_id": by_number[number].hit.document_id,
                }
            )
        else:
            unknown.append(number)
    return cited, unknown


def passages_cited(*, passages: Sequence[PromptPassage], record: QueryRecord) -> list[PromptPassage]:
    """The passages a recorded answer cites (its record's citations, answer_citations), in order of first citation."""
    by_number = {p.number: p for p in passages}
    return [by_number[citation["number"]] for citation in record.citations if citation["number"] in by_number]


def _elapsed_ms(since: float) -> int:
    return round((time.perf_counter() - since) * 1000)


def passage_filters_of(scope: dict) -> PassageFilters:
    """A question's stored scope as search filters (question_create checked it)."""
    return PassageFilters(
        collection_ids=tuple(scope.get("collection_ids", ())),
        time_from=datetime.fromisoformat(scope["time_from"]) if scope.get("time_from") else None,
        time_to=datetime.fromisoformat(scope["time_to"]) if scope.get("time_to") else None,
        host=scope.get("host") or None,
        severities=tuple(scope.get("severities", ())),
    )


async def standalone_query(
    *, question: str, turns: list[Turn], model: AnsweringModel, backend: ChatBackend, start_at: str | None = None
) -> tuple[str, str]:
    """What a follow-up searches for, and how it was made: "model" (rewritten by the answering model), "joined" (the
    previous question and this one: no rewrite, or one that failed), or "as asked" (no earlier turn)."""
    if not turns:
        return question, "as asked"
    if model.rewrites_questions:
        conversation = "\n".join(f"User: {turn.question}\nAssistant: {turn.answer[:400]}" for turn in turns[-3:])
        messages = [
            {"role": "system", "content": REWRITE_PROMPT},
            {"role": "user", "content": f"Conversation:\n{conversation}\n\nLast question: {question}"},
        ]
        parts: list[str] = []
        with contextlib.suppress(EngineError):
            async for delta in backend.stream_chat(messages, REWRITE_PARAMS, enable_thinking=False, start_at=start_at):
                if delta.text and delta.channel == "answer":
                    parts.append(delta.text)
        rewritten = " ".join("".join(parts).strip().strip('"').split())
        if 3 <= len(rewritten) <= MAX_QUESTION_CHARS:
            return rewritten, "model"
    return f"{turns[-1].question} {question}", "joined"


async def _next_or_stop(stream: AsyncIterator, stop: asyncio.Future):
    """The stream's next item, or None once `stop` is done first (its pending read cancelled, which closes the
    engine's stream: generation ends in the engine, not just on the page)."""
    pending = asyncio.ensure_future(anext(stream, None))
    await asyncio.wait({pending, stop}, return_when=asyncio.FIRST_COMPLETED)
    if pending.done():
        return pending.result()
    pending.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await pending
    return None


async def _stop_requested(question_id: int) -> None:
    """Done when the asker presses Stop, in whichever process served that request."""
    while not await sync_to_async(question_stop_requested)(question_id=question_id):
        await asyncio.sleep(STOP_POLL_SECONDS)


@dataclass(frozen=True, kw_only=True)
class Ask:
    """One attempt at answering, as the browser's stored question or an API request puts it: both take one path,
    answer_events, under the asker's permission filter, and leave the same audit record."""

    text: str
    scope: dict  # as QuestionScope.checked_for stores it: checked against what the asker may read
    turns: list[Turn]  # the earlier exchanges the prompt may carry, oldest first
    thinking: bool = False
    model: str | None = None  # the route's model to start at (a later one may answer when it is busy); None: first
    max_tokens: int | None = None  # the asker's cap on the answer, below the model's recommended length
    channel: str = "web"  # the record's channel: "web", "api" or "evaluation"
    recorded_as: dict = dataclasses.field(default_factory=dict)  # what identifies it in the record's scope


async def answer_stream(
    *,
    user: User,
    question: Question,
    max_tokens: int | None = None,
    channel: str = "web",
    backend: ChatBackend | None = None,
) -> AsyncIterator[AnswerEvent]:
    """A stored question answered: marked answered, stopped, failed or (every model busy) pending again, with its
    record, even when the client goes away mid-answer. The browser's, and an evaluation run's, with its own answer
    length (`max_tokens`), its `channel` in the record and its own `backend` (answer_backend_of_this_loop)."""
    ask = Ask(
        text=question.text,
        scope=question.scope,
        turns=await sync_to_async(conversation_turns_before)(question=question),
        thinking=question.thinking,
        max_tokens=max_tokens,
        channel=channel,
        recorded_as={"conversation": question.conversation_id, "question": question.pk},
    )
    events = answer_events(
        user=user,
        ask=ask,
        stop=lambda: _stop_requested(question.pk),
        finish=functools.partial(question_finish, question_id=question.pk),
        backend=backend,
    )
    async with contextlib.aclosing(events):
        async for event in events:
            yield event


async def answer_events(
    *,
    user: User,
    ask: Ask,
    stop: Callable[[], Awaitable[None]] | None = None,
    finish: Callable[..., None] | None = None,
    backend: ChatBackend | None = None,
) -> AsyncIterator[AnswerEvent]:
    """Retrieve what the user may read, prompt the model, stream its answer, and record it, even when the client
    goes away mid-answer. `stop` is awaited beside generation and ends it once done; `finish(record=...)` runs in
    the record's transaction; `backend`: the answering model's connection, else the process's (answer_backend)."""
    started = time.perf_counter()
    backend = backend or answer_backend()
    answer_parts: list[str] = []
    thinking_parts: list[str] = []
    first_token_ms: int | None = None
    first_token_at: float | None = None
    outcome = "failed"  # until it is known how answering ended
    usage = Usage(prompt_tokens=0, completion_tokens=0)
    route: Route | None = None
    passages: list[PromptPassage] = []
    hits = []
    permission_filter: dict = {}
    scope: dict = {**ask.recorded_as, "filters": ask.scope}
    params: GenerationParams | None = None
    thinking = False
    error = ""
    flags: list[str] = []
    retrieval_ms = 0
    stopped = asyncio.ensure_future(stop()) if stop else asyncio.get_running_loop().create_future()
    try:
        model = await asyncio.to_thread(answering_model, backend, model_name=ask.model)
        params = model.generation_params(max_tokens=ask.max_tokens)
        thinking = ask.thinking and model.thinks
        turns = ask.turns
        query, rewrite = await standalone_query(
            question=ask.text, turns=turns, model=model, backend=backend, start_at=ask.model
        )
        search_started = time.perf_counter()
        search = await sync_to_async(passages_search_with_filter_for_user)(
            user=user, query_text=query, k=settings.KB_RETRIEVAL_TOP_K, filters=passage_filters_of(ask.scope)
        )
        RETRIEVAL_SECONDS.observe(time.perf_counter() - search_started)
        hits, permission_filter = search.hits, search.permission_filter
        retrieval_ms = _elapsed_ms(started)
        scope["best_similarity"] = search.best_similarity
        usable_hits = hits
        if hits and not close_enough_to_answer(search.best_similarity, threshold=settings.KB_ABSTAIN_BELOW_SIMILARITY):
            # Passages were found (and are recorded), but none close enough to say anything about this question.
            flags.append("below_threshold")
            usable_hits = []
        budget = ContextBudget(
            context_length=model.context_length,
            answer_tokens=params.max_tokens,
            prefill_tokens_per_second=await sync_to_async(prefill_tokens_per_second_measured)(model=model.name)
            or settings.KB_PREFILL_TOKENS_PER_SECOND,
            first_token_target_seconds=settings.KB_FIRST_TOKEN_TARGET_SECONDS,
        )
        packing_started = time.perf_counter()
        # Counting tokens may ask the serving process: off the event loop.
        count_tokens = await asyncio.to_thread(
            estimated_token_counter,
            backend.count_tokens,
            "\n".join([ask.text, *(hit.text for hit in usable_hits), *(turn.answer for turn in turns[-4:])]),
        )
        sent_turns = turns_within_budget(turns=turns, budget_tokens=budget.history_tokens, count_tokens=count_tokens)
        passage_budget = (
            budget.prompt_tokens
            - count_tokens(ask.text)
            - sum(count_tokens(turn.question) + count_tokens(turn.answer) + TURN_OVERHEAD_TOKENS for turn in sent_turns)
        )
        around = await sync_to_async(document_passages_for_user)(
            user=user, hits=usable_hits, whole_up_to_tokens=passage_budget, permission_filter=permission_filter
        )
        packed = passages_packed(
            hits=usable_hits,
            document_passages=around.by_document,
            whole_document_ids=around.whole,
            budget_tokens=passage_budget,
            count_tokens=count_tokens,
        )
        passages = packed.passages
        scope.update(
            mode="hybrid",
            k=settings.KB_RETRIEVAL_TOP_K,
            standalone_query=query,
            rewrite=rewrite,
            turns=[_turn_on_record(turn) for turn in sent_turns],
            budget={**budget.as_record(), "passage_tokens": passage_budget, "packed_tokens": packed.tokens},
            whole_documents=list(packed.whole_documents),
            packing_ms=_elapsed_ms(packing_started),
        )
        yield AnswerEvent(kind="sources", passages=tuple(passages))
        if not passages:
            # Nothing the asker may read was found: the model is not asked, so it cannot invent an answer.
            answer_parts.append(NO_SOURCES_ANSWER)
            outcome = "not_in_sources"
            yield AnswerEvent(kind="token", text=NO_SOURCES_ANSWER)
        else:
            if model.must_wait:
                yield AnswerEvent(kind="waiting", text=f"{settings.KB_INFERENCE_QUEUE_TIMEOUT:g}")
            messages = answer_messages(passages=passages, turns=sent_turns, question=ask.text)
            stream = backend.stream_chat(messages, params, enable_thinking=thinking, start_at=ask.model)
            try:
                while (delta := await _next_or_stop(stream, stopped)) is not None:
                    if delta.route is not None:
                        route = delta.route
                    elif delta.usage is not None:
                        usage = delta.usage
                    elif delta.text:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                            first_token_ms = _elapsed_ms(started)
                            ANSWER_TIME_TO_FIRST_TOKEN_SECONDS.observe(first_token_at - started)
                        if delta.channel == "thinking":
                            thinking_parts.append(delta.text)
                            yield AnswerEvent(kind="thinking", text=delta.text)
                        else:
                            answer_parts.append(delta.text)
                            yield AnswerEvent(kind="token", text=delta.text)
            finally:
                await stream.aclose()
                _generation_count(first_token_at=first_token_at, usage=usage)
            outcome = "answered"
            if stopped.done():
                flags.append("stopped")
                outcome = "stopped"
    except EngineUnavailable as failure:
        error = str(failure)
        flags.append("busy")
        outcome = "busy"
        yield AnswerEvent(kind="busy", text=error)
    except EngineError as failure:
        error = str(failure)
        outcome = "engine_error"
    except (asyncio.CancelledError, GeneratorExit):
        error = "the client went away before the answer was complete"
        outcome = "client_gone"
        raise
    except Exception:
        # An error nobody foresaw: on record as a failure (not as an empty answer) and the stream still closes.
        logger.exception("answering %r failed", ask.recorded_as)
        error = "an internal error stopped the answer (logged for the administrators)"
    finally:
        stopped.cancel()
        ANSWERS.labels(outcome=outcome).inc()
        record = await sync_to_async(_answer_record)(
            user=user,
            question=ask.text,
            channel=ask.channel,
            finish=finish,
            answer="".join(answer_parts),
            thinking="".join(thinking_parts),
            hits=hits,
            passages=passages,
            permission_filter=permission_filter,
            scope=scope,
            flags=flags,
            error=error,
            route=route,
            params={**dataclasses.asdict(params), "enable_thinking": thinking} if params else {},
            usage=usage,
            timings={
                "retrieval_ms": retrieval_ms,
                "first_token_ms": first_token_ms,
                "total_ms": _elapsed_ms(started),
            },
        )
    yield AnswerEvent(kind="done", text="".join(answer_parts), passages=tuple(passages), record=record)


def _generation_count(*, first_token_at: float | None, usage: Usage) -> None:
    """Tokens and the time spent generating them after the first, whose ratio the operations figures show."""
    if first_token_at is None or usage.completion_tokens <= 1:
        return
    ANSWER_OUTPUT_TOKENS.inc(usage.completion_tokens - 1)
    ANSWER_GENERATION_SECONDS.inc(time.perf_counter() - first_token_at)


@transaction.atomic
def _answer_record(
    *,
    user: User,
    question: str,
    channel: str,
    finish: Callable[..., None] | None,
    answer: str,
    thinking: str,
    hits: list,
    passages: list[PromptPassage],
    permission_filter: dict,
    scope: dict,
    flags: list[str],
    error: str,
    route: Route | None,
    params: dict,
    usage: Usage,
    timings: dict,
) -> QueryRecord:
    """The audit record of one attempt at answering, and the question's state after it, in one transaction."""
    sent_ids = {p.hit.chunk_id for p in passages}
    # Passages sent beyond the hits (whole documents, neighbours) are recorded too, as sent, with no score.
    found_ids = {hit.chunk_id for hit in hits}
    recorded = [*hits, *(p.hit for p in passages if p.hit.chunk_id not in found_ids)]
    citations, unknown_numbers = answer_citations(answer=answer, passages=passages)
    flags = [
        *flags,
        *(
            flag
            for flag, raised in (("removed_citations", unknown_numbers), ("error", error), ("no_passages", not hits))
            if raised
        ),
    ]
    record = query_record_create(
        user=user,
        department_names=permission_filter.get("department_names", []),
        question=question,
        answer=answer,
        channel=channel,
        scope=scope,
        permission_filter=permission_filter,
        citations=citations,
        flags=flags,
        passages=[hit.recorded(sent_to_model=hit.chunk_id in sent_ids) for hit in recorded],
        model=route.model if route else "",
        backend=route.backend if route else "",
        route={"skipped": list(route.skipped)} if route else {},
        thinking=thinking,
        generation_params=params,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        error=error,
        **timings,
    )
    if finish is not None:
        finish(record=record)
    return record


def _turn_on_record(turn: Turn) -> int | dict:
    """An earlier turn as the record names it: its own record, or (sent by an API client) its text."""
    return turn.record_id if turn.record_id is not None else {"question": turn.question, "answer": turn.answer}


@dataclass(frozen=True, kw_only=True)
class QuestionScope:
    """What a question is asked over, as the ask form sends it; empty: everything its asker may read."""

    collection_ids: tuple[int, ...] = ()
    time_from: datetime | None = None
    time_to: datetime | None = None
    host: str = ""
    severities: tuple[str, ...] = ()

    def checked_for(self, user: User) -> dict:
        """The scope to store, once it names only collections the user may read and well-formed log filters."""
        readable = set(collections_readable_by(user=user).values_list("pk", flat=True))
        if not set(self.collection_ids) <= readable:
            raise ValidationError("Choose collections you may read.")
        if self.time_from and self.time_to and self.time_from > self.time_to:
            raise ValidationError("The time range ends before it starts.")
        unknown = set(self.severities) - set(SEVERITIES)
        if unknown:
            raise ValidationError(f"Unknown severity: {', '.join(sorted(unknown))}.")
        if len(self.host) > 255:
            raise ValidationError("Host names are limited to 255 characters.")
        stored = {
            "collection_ids": sorted(self.collection_ids),
            "time_from": self.time_from.isoformat() if self.time_from else "",
            "time_to": self.time_to.isoformat() if self.time_to else "",
            "host": self.host,
            "severities": [severity for severity in SEVERITIES if severity in self.severities],
        }
        return {name: value for name, value in stored.items() if value}


def question_text_checked(text: str) -> str:
    """A question as it is asked: its spaces collapsed, not empty and within MAX_QUESTION_CHARS."""
    text = " ".join(text.split())
    if not text:
        raise ValidationError("Type a question first.")
    if len(text) > MAX_QUESTION_CHARS:
        raise ValidationError(f"Questions are limited to {MAX_QUESTION_CHARS} characters.")
    return text


@transaction.atomic
def question_create(
    *,
    acting_user: User,
    text: str,
    conversation_id: int | None = None,
    scope: QuestionScope | None = None,
    thinking: bool = False,
    regenerates_id: int | None = None,
    unlisted: bool = False,
) -> Question:
    """Store a question to be answered by its stream; a follow-up joins the asker's own conversation.

    With `regenerates_id`, another answer to one of the asker's earlier questions: same text, scope and mode, asked
    again at the end of its conversation. An `unlisted` question (an evaluation run's, asked as its owner) starts a
    conversation its asker never sees listed; its answer's record stays in the audit trail like any other.
    """
    regenerates = None
    if regenerates_id is not None:
        regenerates = (
            Question.objects.filter(
                pk=regenerates_id, conversation__user_id=acting_user.pk, conversation__hidden_at=None
            )
            .select_related("conversation")
            .first()
        )
        if regenerates is None:
            raise ValidationError("There is no such question of yours to answer again.")
        text, conversation_id, thinking = regenerates.text, regenerates.conversation_id, regenerates.thinking
        stored_scope = regenerates.scope
    else:
        stored_scope = (scope or QuestionScope()).checked_for(acting_user)
    text = question_text_checked(text)
    conversation = None
    if conversation_id is not None:
        conversation = Conversation.objects.filter(pk=conversation_id, user_id=acting_user.pk, hidden_at=None).first()
    if conversation is None:
        conversation = Conversation.objects.create(
            user=acting_user, title=text[:200], hidden_at=timezone.now() if unlisted else None
        )
    else:
        conversation.save(update_fields=["updated_at"])
    return Question.objects.create(
        conversation=conversation, text=text, scope=stored_scope, thinking=thinking, regenerates=regenerates
    )


def question_claim(*, question_id: int) -> bool:
    """True for the one stream that may answer this question: the first to open it, once (again after a busy)."""
    return bool(
        Question.objects.filter(pk=question_id, state=Question.State.PENDING).update(state=Question.State.ANSWERING)
    )


def question_finish(*, question_id: int, record: QueryRecord) -> None:
    """After an attempt: answered, stopped or failed with its record; back to pending when every model was busy,
    so that its asker can retry (the busy attempt keeps its own record in the audit trail)."""
    if "busy" in record.flags:
        Question.objects.filter(pk=question_id).update(state=Question.State.PENDING, stop_requested=False)
        return
    if "stopped" in record.flags:
        state = Question.State.STOPPED
    elif record.error:
        state = Question.State.FAILED
    else:
        state = Question.State.ANSWERED
    Question.objects.filter(pk=question_id).update(state=state, query_record=record)


def question_stop(*, acting_user: User, question_id: int) -> bool:
    """The asker's Stop: the answering stream, in whichever process, cancels generation at its next check. False
    when there is nothing of theirs to stop (finished, someone else's, unknown)."""
    return bool(
        Question.objects.filter(
            pk=question_id,
            conversation__user_id=acting_user.pk,
            state__in=(Question.State.PENDING, Question.State.ANSWERING),
        ).update(stop_requested=True)
    )


CONVERSATION_TITLE_MAX_CHARS = Conversation._meta.get_field("title").max_length


@transaction.atomic
def conversation_rename(*, acting_user: User, conversation_id: int, title: str) -> Conversation:
    """Its owner's new title for a conversation (its spaces collapsed); 404 for anyone else, as for a deleted one."""
    conversation = conversation_get_for_owner(user=acting_user, conversation_id=conversation_id)
    title = " ".join(title.split())
    if not title:
        raise ValidationError("Give the conversation a title.")
    if len(title) > CONVERSATION_TITLE_MAX_CHARS:
        raise ValidationError(f"Titles are limited to {CONVERSATION_TITLE_MAX_CHARS} characters.")
    before = {"title": conversation.title}
    conversation.title = title
    conversation.save(update_fields=["title"])  # not `updated_at`: the list keeps its order by the last question
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.CONVERSATION_RENAMED,
        subject=conversation,
        before=before,
        after={"title": title},
    )
    return conversation


@transaction.atomic
def conversation_delete(*, acting_user: User, conversation_id: int) -> None:
    """Deleting hides the conversation from its owner, the only one who sees it; its questions and their records stay
    with the audit trail, whose retention alone removes records."""
    conversation = conversation_get_for_owner(user=acting_user, conversation_id=conversation_id)
    conversation.hidden_at = timezone.now()
    conversation.save(update_fields=["hidden_at"])
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.CONVERSATION_DELETED,
        subject=conversation,
        before={"title": conversation.title, "hidden_at": None},
        after={"title": conversation.title, "hidden_at": conversation.hidden_at.isoformat()},
    )
