import codecs

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.decorators import sync_and_async_middleware


@sync_and_async_middleware
def refuse_unstorable_text(get_response):
    """PostgreSQL text cannot hold a NUL character: a form field or query parameter with one would otherwise fail
    inside a view's first query (a server error), so it is refused up front, naming the field.

    Nor can it hold a lone surrogate, which UTF-8 never decodes to but a charset the request declares may
    ("charset=unicode_escape" turns the text \\ud800 into one): Django decodes the query string and the form in the
    charset of the request's Content-Type, so anything but UTF-8 (or ASCII) is refused before either is read.
    Browsers send UTF-8.

    A form is read only from a logged-in user: anyone else's is not read here at all (the login forms' fields refuse
    a NUL themselves; every other view sends them to log in). Placed after AuthenticationMiddleware for that."""

    def refusal(request: HttpRequest) -> HttpResponse | None:
        if request.encoding and codecs.lookup(request.encoding).name not in {"utf-8", "ascii"}:
            return HttpResponseBadRequest(
                f"Requests are read as UTF-8 only; this one says its text is {request.encoding}.",
                content_type="text/plain",
            )
        fields = list(request.GET.lists())
        if request.method == "POST" and request.user.is_authenticated:
            fields += request.POST.lists()
        for name, values in fields:
            if any("\x00" in value for value in values):
                return HttpResponseBadRequest(
                    f"The field “{name}” contains a NUL character, which cannot be stored. Remove it and try again.",
                    content_type="text/plain",
                )
        return None

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            # Parsing a form (an upload, say) is blocking work: off the event loop, as Django's own middleware does.
            checked = await sync_to_async(refusal)(request) if request.method == "POST" else refusal(request)
            return checked or await get_response(request)
    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            return refusal(request) or get_response(request)

    return middleware
