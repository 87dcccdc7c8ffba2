"""Answering a question: retrieve what the user may read, prompt the local LLM, stream, record."""

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from inference.chat_template import ChatMessage
from inference.types import EngineError, Route, Usage
from kb.accounts.models import User
from kb.audit.models import QueryRecord
from kb.audit.services import RecordedPassage, query_record_create
from kb.chat.generation import answer_backend, answer_generation_params
from kb.chat.models import Conversation, Question
from kb.search.selectors import PassageHit, passages_search_with_filter_for_user

SYSTEM_PROMPT = (
    "You are the company knowledge base assistant. Answer the question using only the numbered passages. "
    "Cite the passages you use as [1], [2]. If the passages do not contain the answer, say that you do not know."
)
_MIN_PASSAGE_TOKENS = 40
MAX_QUESTION_CHARS = 2000
NO_SOURCES_ANSWER = "The documents you can read do not say: no passage matches this question."


@dataclass(frozen=True)
class PromptPassage:
    number: int
    hit: PassageHit
    text: str


@dataclass(frozen=True)
class AnswerEvent:
    kind: Literal["sources", "thinking", "token", "done"]
    text: str = ""
    passages: tuple[PromptPassage, ...] = ()
    record: QueryRecord | None = None


def passages_within_budget(
    *, hits: list[PassageHit], count_tokens: Callable[[str], int], budget_tokens: int
) -> list[PromptPassage]:
    """Fill the prompt's passage budget in rank order; the last passage that fits only partly is shortened."""
    chosen: list[PromptPassage] = []
    remaining = budget_tokens
    for hit in hits:
        if remaining < _MIN_PASSAGE_TOKENS:
            break
        tokens = count_tokens(hit.text)
        text = hit.text if tokens <= remaining else hit.text[: len(hit.text) * remaining // tokens]
        remaining -= min(tokens, remaining)
        chosen.append(PromptPassage(number=len(chosen) + 1, hit=hit, text=text))
    return chosen


CITATION = re.compile(r"\[(\d{1,3})\]")


def answer_citations(*, answer: str, passages: list[PromptPassage]) -> tuple[list[dict], list[int]]:
    """The passages an answer cites as [n], in order of first citation, and numbers it cites that it was not given."""
    by_number = {p.number: p for p in passages}
    cited: list[dict] = []
    unknown: list[int] = []
    for number in dict.fromkeys(int(match) for match in CITATION.findall(answer)):
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


def answer_messages(*, question: str, passages: list[PromptPassage]) -> list[ChatMessage]:
    context = (
        "\n\n".join(f"[{p.number}] {p.hit.document_title} — {p.hit.heading}\n{p.text}" for p in passages)
        or "(no passages)"
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {question}"},
    ]


def _elapsed_ms(since: float) -> int:
    return round((time.perf_counter() - since) * 1000)


async def answer_stream(*, user: User, question: str, question_id: int | None = None) -> AsyncIterator[AnswerEvent]:
    """With `question_id`, the stored question is marked answered (or failed) with its record, even when the client
    goes away mid-answer."""
    started = time.perf_counter()
    search = await sync_to_async(passages_search_with_filter_for_user)(
        user=user, query_text=question, k=settings.KB_RETRIEVAL_TOP_K
    )
    hits = search.hits
    retrieval_ms = _elapsed_ms(started)
    backend = answer_backend()
    params = answer_generation_params()
    thinking = settings.KB_LLM_ENABLE_THINKING
    answer_parts: list[str] = []
    thinking_parts: list[str] = []
    first_token_ms: int | None = None
    usage = Usage(prompt_tokens=0, completion_tokens=0)
    route: Route | None = None
    passages: list[PromptPassage] = []
    error = ""
    try:
        # Counting tokens may ask the serving process: keep it off the event loop.
        passages = await asyncio.to_thread(
            passages_within_budget,
            hits=hits,
            count_tokens=backend.count_tokens,
            budget_tokens=settings.KB_PROMPT_CONTEXT_TOKENS,
        )
        yield AnswerEvent(kind="sources", passages=tuple(passages))
        if passages:
            messages = answer_messages(question=question, passages=passages)
            async for delta in backend.stream_chat(messages, params, enable_thinking=thinking):
                if delta.route is not None:
                    route = delta.route
                elif delta.usage is not None:
                    usage = delta.usage
                elif delta.text:
                    if first_token_ms is None:
                        first_token_ms = _elapsed_ms(started)
                    if delta.channel == "thinking":
                        thinking_parts.append(delta.text)
                        yield AnswerEvent(kind="thinking", text=delta.text)
                    else:
                        answer_parts.append(delta.text)
                        yield AnswerEvent(kind="token", text=delta.text)
        else:
            # Nothing the asker may read was found: the model is not asked, so it cannot invent an answer.
            answer_parts.append(NO_SOURCES_ANSWER)
            yield AnswerEvent(kind="token", text=NO_SOURCES_ANSWER)
    except EngineError as failure:
        error = str(failure)
    except (asyncio.CancelledError, GeneratorExit):
        error = "the client went away before the answer was complete"
        raise
    finally:
        sent_ids = {p.hit.chunk_id for p in passages}
        answer = "".join(answer_parts)
        citations, unknown_numbers = answer_citations(answer=answer, passages=passages)
        flags = [
            flag
            for flag, raised in (("removed_citations", unknown_numbers), ("error", error), ("no_passages", not hits))
            if raised
        ]
        record = await sync_to_async(query_record_create)(
            user=user,
            department_names=search.permission_filter["department_names"],
            question=question,
            answer=answer,
            scope={
                "mode": "hybrid",
                "k": settings.KB_RETRIEVAL_TOP_K,
                "prompt_passage_tokens": settings.KB_PROMPT_CONTEXT_TOKENS,
                "question": question_id,
            },
            permission_filter=search.permission_filter,
            citations=citations,
            flags=flags,
            passages=[
                RecordedPassage(
                    chunk_id=hit.chunk_id,
                    document_id=hit.document_id,
                    version_id=hit.version_id,
                    score=hit.score,
                    sent_to_model=hit.chunk_id in sent_ids,
                    text=hit.text,
                )
                for hit in hits
            ],
            model=route.model if route else "",
            backend=route.backend if route else "",
            route={"skipped": list(route.skipped)} if route else {},
            thinking="".join(thinking_parts),
            generation_params={**dataclasses.asdict(params), "enable_thinking": thinking},
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            retrieval_ms=retrieval_ms,
            first_token_ms=first_token_ms,
            total_ms=_elapsed_ms(started),
            error=error,
        )
        if question_id is not None:
            await sync_to_async(question_finish)(question_id=question_id, record=record)
    yield AnswerEvent(kind="done", text="".join(answer_parts), passages=tuple(passages), record=record)


@transaction.atomic
def question_create(*, acting_user: User, text: str, conversation_id: int | None = None) -> Question:
    """Store a question to be answered by its stream; a follow-up joins the asker's own conversation."""
    text = " ".join(text.split())
    if not text:
        raise ValidationError("Type a question first.")
    if len(text) > MAX_QUESTION_CHARS:
        raise ValidationError(f"Questions are limited to {MAX_QUESTION_CHARS} characters.")
    conversation = None
    if conversation_id is not None:
        conversation = Conversation.objects.filter(pk=conversation_id, user_id=acting_user.pk).first()
    if conversation is None:
        conversation = Conversation.objects.create(user=acting_user, title=text[:200])
    else:
        conversation.save(update_fields=["updated_at"])
    return Question.objects.create(conversation=conversation, text=text)


def question_claim(*, question_id: int) -> bool:
    """True for the one stream that may answer this question: the first to open it, once."""
    return bool(
        Question.objects.filter(pk=question_id, state=Question.State.PENDING).update(state=Question.State.ANSWERING)
    )


def question_finish(*, question_id: int, record: QueryRecord) -> None:
    state = Question.State.FAILED if record.error else Question.State.ANSWERED
    Question.objects.filter(pk=question_id).update(state=state, query_record=record)
