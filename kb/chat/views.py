import html
import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from inference.registry import PRESETS
from inference.types import EngineError
from kb.chat.generation import answer_backend
from kb.chat.services import CITATION, AnswerEvent, PromptPassage, answer_stream
from kb.platform.views import render_page

MAX_QUESTION_CHARS = 2000


@login_required
@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    return render(request, "chat/chat.html", {"max_question_chars": MAX_QUESTION_CHARS})


@login_required
@require_POST
def chat_ask(request: HttpRequest) -> HttpResponse:
    question = " ".join(request.POST.get("question", "").split())
    error = ""
    if not question:
        error = "Type a question first."
    elif len(question) > MAX_QUESTION_CHARS:
        error = f"Questions are limited to {MAX_QUESTION_CHARS} characters."
    context = {
        "question": question,
        "error": error,
        "stream_url": f"{reverse('chat:stream')}?{urlencode({'q': question})}",
        "max_question_chars": MAX_QUESTION_CHARS,
    }
    return render_page(request, "chat/chat.html", partial="exchange", context=context, status=400 if error else 200)


def _sse(event: str, data: str) -> bytes:
    # SSE data may not contain bare newlines: each line is its own `data:` field and the browser rejoins them.
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


def answer_with_citation_links(*, answer: str, passages: tuple[PromptPassage, ...]) -> str:
    by_number = {p.number: p for p in passages}

    def link(match: re.Match[str]) -> str:
        passage = by_number.get(int(match.group(1)))
        if passage is None:  # the model cited a passage it was not given: removed, and flagged on the record
            return ""
        url = reverse("search:passage", args=[passage.hit.chunk_id])
        return (
            f'<a class="citation" href="{url}" hx-get="{url}" hx-target="#passage-panel" '
            f'hx-push-url="false">[{passage.number}]</a>'
        )

    return CITATION.sub(link, html.escape(answer))


async def _event_stream(request: HttpRequest, question: str) -> AsyncIterator[bytes]:
    user = await request.auser()
    event: AnswerEvent
    async for event in answer_stream(user=user, question=question):
        if event.kind == "sources":
            yield _sse("sources", render_to_string("chat/chat.html#sources", {"passages": event.passages}))
        elif event.kind in {"token", "thinking"}:
            yield _sse(event.kind, html.escape(event.text))
        else:
            final = render_to_string(
                "chat/chat.html#answer",
                {
                    "question": question,
                    "answer_html": answer_with_citation_links(answer=event.text, passages=event.passages),
                    "passages": event.passages,
                    "record": event.record,
                },
            )
            yield _sse("done", final)


@require_GET
async def chat_stream(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse("Log in to ask questions.", status=401)
    question = " ".join(request.GET.get("q", "").split())
    if not question or len(question) > MAX_QUESTION_CHARS:
        return HttpResponseBadRequest("A question of 1 to 2000 characters is required.")
    response = StreamingHttpResponse(_event_stream(request, question), content_type="text/event-stream")
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
