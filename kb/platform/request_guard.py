"""What the ASGI server refuses before the app reads a request's body.

Django's ASGI handler reads a whole body (to memory, then a temporary file) before any middleware or view runs, so a
login check or a size limit in the app comes only after the bytes have been taken. This wrapper, outside Django
(kb/asgi.py), looks at the request line and headers first:

- a request with a body, whatever its method (Django reads a GET's body as it reads a POST's), is refused (403)
  unless its session cookie names a logged-in session in the session store or it goes to a login form
  (KB_ANONYMOUS_FORM_URL_NAMES); under KB_BEARER_TOKEN_PATH_PREFIXES (the API, which reads no session) only with
  `Authorization: Bearer` and a token that may act (401 otherwise, in the API's error shape);
- a body longer than KB_REQUEST_MAX_BYTES is refused (413): by its Content-Length before a byte is read, or, sent
  without one, as soon as it grows past the limit.

A refusal closes the connection, leaving the rest of the body unread. For htmx it says `HX-Reswap: none`: the page
stays as it was, and kb.js shows the reason in its banner.
"""

import json
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.db import close_old_connections
from django.http.cookie import parse_cookie
from django.urls import reverse
from django.utils.module_loading import import_string

from kb.platform.bearer import bearer_token

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The API's words for a request without a token that may act, whether the guard or its view refuses it.
TOKEN_REFUSED = (
    "Send a valid personal API token as `Authorization: Bearer <token>`: this one is missing, wrong, revoked or "
    "expired, or its user is deactivated. Tokens are made on the API tokens page."
)
NOT_LOGGED_IN = (
    "You are not logged in, or your session has ended: nothing was sent on. Log in again (reload the page), then "
    "try once more."
)


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        htmx = "hx-request" in headers
        try:
            declared = int(headers["content-length"]) if "content-length" in headers else None
        except ValueError:
            await _refuse(send, 400, "The request's Content-Length is not a number.", htmx=htmx)
            return
        limit = settings.KB_REQUEST_MAX_BYTES
        has_body = bool(declared) or "transfer-encoding" in headers
        # Whatever the method: Django reads a GET's body as it reads a POST's.
        if has_body and not await _may_send_a_body(scope, headers):
            if _is_bearer_token_path(scope):
                await _refuse_without_token(send)
            else:
                await _refuse(send, 403, NOT_LOGGED_IN, htmx=htmx)
            return
        if declared is not None and declared > limit:
            await _refuse(send, 413, _too_large(limit), htmx=htmx)
            return

        received = 0
        refused = False

        async def receive_within_limit() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Sent without a Content-Length and grown past the limit: answer, and have the app stop reading
                    # as it does when the client goes away (Django drops the request without a response).
                    refused = True
                    await _refuse(send, 413, _too_large(limit), htmx=htmx)
                    return {"type": "http.disconnect"}
            return message

        async def send_unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, receive_within_limit, send_unless_refused)


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def _is_bearer_token_path(scope: Scope) -> bool:
    return scope["path"].startswith(tuple(settings.KB_BEARER_TOKEN_PATH_PREFIXES))


async def _may_send_a_body(scope: Scope, headers: dict[str, str]) -> bool:
    path = scope["path"]
    if _is_bearer_token_path(scope):
        # The API reads no session: only a token that may act lets its body in. Any Authorization header would
        # otherwise do, and an anonymous client would get KB_REQUEST_MAX_BYTES read before the view refused it.
        return await sync_to_async(_bearer_token_may_act)(headers.get("authorization", ""))
    if path in {reverse(name) for name in settings.KB_ANONYMOUS_FORM_URL_NAMES}:
        return True
    session_key = parse_cookie(headers.get("cookie", "")).get(settings.SESSION_COOKIE_NAME)
    return bool(session_key) and await sync_to_async(_session_is_logged_in)(session_key)


def _session_is_logged_in(session_key: str) -> bool:
    """Whether the session store holds a live session of a logged-in user under this key. Only that: the user's
    standing (active, password unchanged) is checked by the app's authentication, as for any request."""
    close_old_connections()  # outside Django's request cycle, which would otherwise do this around the query
    try:
        session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        return session.get(SESSION_KEY) is not None
    finally:
        close_old_connections()


def _bearer_token_may_act(authorization: str) -> bool:
    """Whether `Bearer <token>` names a token that may act now, by the API's own check (KB_BEARER_TOKEN_CHECK, by
    name: this package imports no app). Its scope and rate limit stay the view's to check."""
    presented = bearer_token(authorization)
    if not presented:
        return False
    close_old_connections()
    try:
        return import_string(settings.KB_BEARER_TOKEN_CHECK)(presented=presented) is not None
    finally:
        close_old_connections()


def _too_large(limit: int) -> str:
    return (
        f"The request is larger than the limit of {limit / 1024 / 1024:.0f} MB and was not read. Send fewer or "
        "smaller files at a time."
    )


async def _refuse(send: Send, status: int, reason: str, *, htmx: bool) -> None:
    body = reason.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is never read, so the connection cannot serve another
    ]
    if htmx:
        headers.append((b"hx-reswap", b"none"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_without_token(send: Send) -> None:
    """An API request without a token that may act: refused as the API refuses it (401, its JSON error shape and
    words: kb.api.auth), so that a client reads the same answer whether the guard or the view turned it away."""
    body = json.dumps(
        {
            "error": {
                "message": TOKEN_REFUSED,
                "type": "authentication_error",
                "code": "invalid_api_key",
                "param": None,
            }
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="kb"'),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
