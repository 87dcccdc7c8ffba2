import html
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from inference.registry import PRESETS
from inference.types import EngineError
from kb.chat.generation import answer_backend
from kb.chat.models import Question
from kb.chat.rendering import answer_html
from kb.chat.selectors import question_get_for_asker
from kb.chat.services import (
    MAX_QUESTION_CHARS,
    AnswerEvent,
    answer_stream,
    question_claim,
    question_create,
)
from kb.platform.forms import submitted_id
from kb.platform.views import render_page


@login_required
@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/chat.html", {"max_question_chars": MAX_QUESTION_CHARS})


@login_required
@require_POST
def chat_ask(request: HttpRequest) -> HttpResponse:
    """The question is stored by this POST (CSRF-protected) and answered by its stream, whose URL holds only its id."""
    context = {"max_question_chars": MAX_QUESTION_CHARS}
    try:
        question = question_create(
            acting_user=request.user,
            text=request.POST.get("question", ""),
            conversation_id=submitted_id(request.POST.get("conversation")),
        )
    except ValidationError as error:
        context["error"] = " ".join(error.messages)
        return render_page(request, "chat/chat.html", partial="exchange", context=context, status=400)
    context.update(question=question, conversation=question.conversation)
    return render_page(request, "chat/chat.html", partial="exchange", context=context)


def _sse(event: str, data: str) -> bytes:
    # SSE data may not contain bare newlines: each line is its own `data:` field and the browser rejoins them.
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


async def _event_stream(user, question: Question) -> AsyncIterator[bytes]:
    event: AnswerEvent
    async for event in answer_stream(user=user, question=question.text, question_id=question.pk):
        if event.kind == "sources":
            yield _sse("sources", render_to_string("chat/chat.html#sources", {"passages": event.passages}))
        elif event.kind in {"token", "thinking"}:
            yield _sse(event.kind, html.escape(event.text))
        else:
            final = render_to_string(
                "chat/chat.html#answer",
                {
                    "question": question.text,
                    "answer_html": answer_html(
                        event.text, chunk_by_number={p.number: p.hit.chunk_id for p in event.passages}
                    ),
                    "passages": event.passages,
                    "record": event.record,
                },
            )
            yield _sse("done", final)


async def _answer_replayed(question: Question) -> AsyncIterator[bytes]:
    """A stream opened again (a reload, the SSE extension reconnecting) never asks the model a second time."""
    record = question.query_record
    context = {"question": question.text, "record": record, "replayed": True}
    if record is not None:
        chunk_by_number = {citation["number"]: citation["chunk_id"] for citation in record.citations}
        context["answer_html"] = answer_html(record.answer, chunk_by_number=chunk_by_number)
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
