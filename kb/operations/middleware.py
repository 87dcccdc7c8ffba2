import time
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

from kb.platform.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS_IN_PROGRESS, http_method_label

# A request no route matched (a 404 before any view): its path is what someone typed, so it is never a label.
UNMATCHED = "unmatched"


@sync_and_async_middleware
def request_figures(get_response):
    """Each request's latency by the name of the route that answered it, and the requests in progress (a stream
    until its last byte). Outermost, so that it times the other middleware too."""

    def counted(request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
        match = request.resolver_match
        HTTP_REQUEST_SECONDS.labels(
            view=match.view_name if match else UNMATCHED,
            method=http_method_label(request.method),
            status=str(response.status_code),
        ).observe(time.perf_counter() - started)
        if response.streaming:
            released = _ReleasedAsync if response.is_async else _Released
            response.streaming_content = released(response.streaming_content)
        else:
            HTTP_REQUESTS_IN_PROGRESS.dec()
        return response

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            started = time.perf_counter()
            HTTP_REQUESTS_IN_PROGRESS.inc()
            try:
                response = await get_response(request)
            except BaseException:
                HTTP_REQUESTS_IN_PROGRESS.dec()
                raise
            return counted(request, response, started)
    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            started = time.perf_counter()
            HTTP_REQUESTS_IN_PROGRESS.inc()
            try:
                response = get_response(request)
            except BaseException:
                HTTP_REQUESTS_IN_PROGRESS.dec()
                raise
            return counted(request, response, started)

    return middleware


class _CountedUntilClosed:
    """A stream's content that keeps its request counted in progress until the stream ends or the response is
    closed (Django closes it after sending, and when the client goes away), whichever comes first."""

    def __init__(self, content) -> None:
        self._content = content
        self._counted = True

    def close(self) -> None:
        if self._counted:
            self._counted = False
            HTTP_REQUESTS_IN_PROGRESS.dec()


class _Released(_CountedUntilClosed):
    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._content
        finally:
            self.close()


class _ReleasedAsync(_CountedUntilClosed):
    async def _parts(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._content:
                yield part
        finally:
            self.close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._parts()
