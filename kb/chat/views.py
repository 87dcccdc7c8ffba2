import html
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from extract.logs.severities import SEVERITIES
from inference.registry import PRESETS
from inference.types import EngineError
from kb.audit.models import QueryRecord
from kb.chat.generation import answer_backend, answering_model
from kb.chat.models import Question
from kb.chat.rendering import answer_html
from kb.chat.selectors import (
    conversation_get_for_owner,
    conversation_questions_for_owner,
    conversations_of_user,
    question_get_for_asker,
)
from kb.chat.services import (
    CONVERSATION_TITLE_MAX_CHARS,
    MAX_QUESTION_CHARS,
    AnswerEvent,
    QuestionScope,
    answer_stream,
    conversation_delete,
    conversation_rename,
    question_claim,
    question_create,
    question_stop,
)
from kb.documents.selectors import collections_holding_logs, collections_readable_by
from kb.platform.forms import submitted_id
from kb.platform.metrics import ASKS_REFUSED_BUSY
from kb.platform.views import render_after_change, render_page


def _ask_form_context(user) -> dict:
    """What the ask form offers: the collections the user may read, log filters where one of them holds logs, and
    the thinking toggle where the answering model can think."""
    collections = collections_readable_by(user=user)
    try:
        model = answering_model()
    except EngineError:
        model = None
    return {
        "max_question_chars": MAX_QUESTION_CHARS,
        "collections": collections,
        "log_collection_ids": set(collections_holding_logs(collections=collections)),
        "severities": SEVERITIES,
        "model_thinks": bool(model and model.thinks),
        "thinking_default": settings.KB_LLM_ENABLE_THINKING,
    }


@login_required
@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    """The empty ask page: its first question starts a new conversation."""
    context = {**_ask_form_context(request.user), "conversations": conversations_of_user(user=request.user)}
    return render(request, "chat/chat.html", context)


@dataclass(frozen=True)
class StoredExchange:
    """A question of an opened conversation and its recorded answer, shown without asking the model again."""

    question: Question
    answer_html: str


def _render_conversation(
    request: HttpRequest, conversation_id: int, *, status: int = 200, error: str = ""
) -> HttpResponse:
    conversation = conversation_get_for_owner(user=request.user, conversation_id=conversation_id)
    questions = conversation_questions_for_owner(user=request.user, conversation_id=conversation.pk)
    context = {
        **_ask_form_context(request.user),
        "conversations": conversations_of_user(user=request.user),
        "conversation": conversation,
        "exchanges": [StoredExchange(question, _stored_answer_html(question.query_record)) for question in questions],
        "title_max_chars": CONVERSATION_TITLE_MAX_CHARS,
        "rename_error": error,
    }
    return render_page(request, "chat/chat.html", partial="conversation-header", context=context, status=status)


@login_required
@require_GET
def conversation_page(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """One of the user's conversations, oldest exchange first; the next question asked here is its follow-up."""
    return _render_conversation(request, conversation_id)


@login_required
@require_POST
def conversation_rename_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    change = partial(
        conversation_rename,
        acting_user=request.user,
        conversation_id=conversation_id,
        title=request.POST.get("title", ""),
    )
    return render_after_change(change, partial(_render_conversation, request, conversation_id))


@login_required
@require_POST
def conversation_delete_view(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Confirmed on the page (a second button); the user lands on the empty ask page."""
    conversation_delete(acting_user=request.user, conversation_id=conversation_id)
    return redirect("chat:page")


def _submitted_time(value: str, label: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"The {label} time is not a date and time.") from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _submitted_scope(data) -> QuestionScope:
    return QuestionScope(
        collection_ids=tuple(filter(None, (submitted_id(value) for value in data.getlist("collection")))),
        time_from=_submitted_time(data.get("time_from", ""), "start"),
        time_to=_submitted_time(data.get("time_to", ""), "end"),
        host=data.get("host", "").strip(),
        severities=tuple(data.getlist("severity")),
    )


def _busy_response(request: HttpRequest, context: dict, message: str) -> HttpResponse:
    ASKS_REFUSED_BUSY.inc()
    resubmit = [
        (name, value) for name, values in request.POST.lists() if name != "csrfmiddlewaretoken" for value in values
    ]
    response = render_page(
        request,
        "chat/chat.html",
        partial="exchange",
        context={**context, "busy": message, "resubmit": resubmit},
        status=503,
    )
    response["Retry-After"] = "5"
    return response


@login_required
@require_POST
def chat_ask(request: HttpRequest) -> HttpResponse:
    """The question is stored by this POST (CSRF-protected) and answered by its stream, whose URL holds only its id.

    When no model can take it now, nothing is stored: 503 at once, and the form keeps the question for a retry."""
    context = {"max_question_chars": MAX_QUESTION_CHARS}
    if not request.htmx:  # the whole page (no JavaScript): its scope choices and conversations as well
        context.update(_ask_form_context(request.user), conversations=conversations_of_user(user=request.user))
    try:
        if not answering_model().can_take_question:
            return _busy_response(request, context, "Every model is busy with other questions.")
    except EngineError as failure:
        return _busy_response(request, context, str(failure))
    try:
        question = question_create(
            acting_user=request.user,
            text=request.POST.get("question", ""),
            conversation_id=submitted_id(request.POST.get("conversation")),
            scope=_submitted_scope(request.POST),
            thinking=request.POST.get("thinking") == "on",
            regenerates_id=submitted_id(request.POST.get("regenerate")),
        )
    except ValidationError as error:
        context["error"] = " ".join(error.messages)
        return render_page(request, "chat/chat.html", partial="exchange", context=context, status=400)
    context.update(
        question=question,
        conversation=question.conversation,
        conversations=conversations_of_user(user=request.user),
        conversation_list_changed=True,  # a new conversation, or this one asked in last: it moves to the top
    )
    response = render_page(request, "chat/chat.html", partial="exchange", context=context)
    conversation_url = reverse("chat:conversation", args=[question.conversation_id])
    if request.htmx and request.htmx.current_url_abs_path != conversation_url:
        # The first question of a new conversation: a reload, a bookmark or the back button then find it again.
        response["HX-Push-Url"] = conversation_url
    return response


@login_required
@require_POST
def question_stop_view(request: HttpRequest, question_id: int) -> HttpResponse:
    """Stop: the stream that answers it ends generation in the engine and keeps the partial answer, marked stopped."""
    question_stop(acting_user=request.user, question_id=question_id)
    return HttpResponse(status=204)


@login_required
@require_GET
def question_exchange(request: HttpRequest, question_id: int) -> HttpResponse:
    """One exchange as the page shows it: streaming (it connects to its stream) while pending, else its answer.
    Reading only: answering starts when the stream is opened."""
    question = question_get_for_asker(user=request.user, question_id=question_id)
    context = {
        "question": question,
        "conversation": question.conversation,
        "answer_html": _stored_answer_html(question.query_record),
    }
    return render(request, "chat/chat.html#exchange", context)


def _sse(event: str, data: str) -> bytes:
    # SSE data may not contain bare newlines: each line is its own `data:` field and the browser rejoins them.
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


async def _event_stream(user, question: Question) -> AsyncIterator[bytes]:
    event: AnswerEvent
    async for event in answer_stream(user=user, question=question):
        if event.kind == "sources":
            yield _sse("sources", render_to_string("chat/chat.html#sources", {"passages": event.passages}))
        elif event.kind in {"token", "thinking"}:
            yield _sse(event.kind, html.escape(event.text))
        elif event.kind == "waiting":
            yield _sse("status", render_to_string("chat/chat.html#waiting", {"wait_seconds": event.text}))
        elif event.kind == "busy":
            busy = render_to_string("chat/chat.html#busy-retry", {"question": question, "busy": event.text})
            yield _sse("done", busy)
            return
        else:
            final = render_to_string(
                "chat/chat.html#answer",
                {
                    "question": question,
                    "answer_html": answer_html(
                        event.text, chunk_by_number={p.number: p.hit.chunk_id for p in event.passages}
                    ),
                    "passages": event.passages,
                    "record": event.record,
                },
            )
            yield _sse("done", final)


def _stored_answer_html(record: QueryRecord | None) -> str:
    """A recorded answer with its citations linked to the passages it was given (kept in the record)."""
    if record is None:
        return ""
    chunk_by_number = {citation["number"]: citation["chunk_id"] for citation in record.citations}
    return answer_html(record.answer, chunk_by_number=chunk_by_number)


async def _answer_replayed(question: Question) -> AsyncIterator[bytes]:
    """A stream opened again (a reload, the SSE extension reconnecting) never asks the model a second time."""
    record = question.query_record
    context = {"question": question, "record": record, "replayed": True, "answer_html": _stored_answer_html(record)}
    yield _sse("done", render_to_string("chat/chat.html#answer", context))


@require_GET
async def question_stream(request: HttpRequest, question_id: int) -> HttpResponse:
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse("Log in to ask questions.", status=401)
    question = await sync_to_async(question_get_for_asker)(user=user, question_id=question_id)
    if await sync_to_async(question_claim)(question_id=question.pk):
        events = _event_stream(user, question)
    else:
        events = _answer_replayed(question)
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@login_required
@require_GET
def models_page(request: HttpRequest) -> HttpResponse:
    """Which models are loaded and in what state, and what each preset needs, for superusers."""
    if not request.user.is_superuser:
        raise PermissionDenied("Only superusers manage models.")
    error = ""
    try:
        models = answer_backend().describe()
    except EngineError as failure:
        models, error = [], str(failure)
    presets = [
        {"preset": preset, "vram": {precision: round(preset.vram_gib(precision), 1) for precision in ("bf16", "w4a16")}}
        for preset in PRESETS.values()
    ]
    context = {"models": models, "error": error, "presets": presets}
    return render_page(request, "chat/models.html", partial="models", context=context)
