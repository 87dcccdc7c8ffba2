"""kb/platform/request_guard.py: request bodies are refused by size and login before anything reads them.

Driven through ASGI, the way uvicorn calls the app, with bodies produced lazily so that what was read is counted."""

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.contrib.sessions.backends.db import SessionStore
from django.core.asgi import get_asgi_application
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from kb.accounts.services import api_token_create, api_token_revoke
from kb.documents.models import DocumentVersion
from kb.platform.request_guard import RequestGuard
from tests.factories import make_collection, make_department, make_user

MB = 1024 * 1024


class Body:
    """A request body sent in chunks, made only as the server asks for them."""

    def __init__(self, size: int, chunk: int = MB) -> None:
        self.size, self.chunk, self.sent = size, chunk, 0

    def chunks(self) -> Iterator[bytes]:
        while self.sent < self.size:
            piece = b"x" * min(self.chunk, self.size - self.sent)
            self.sent += len(piece)
            yield piece


class Recorder:
    """An app behind the guard that reads the whole body, as Django does."""

    def __init__(self) -> None:
        self.read = None

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.read = len(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read"})


def _call(app, method: str, path: str, *, headers: dict[str, str], body: Body | bytes = b"") -> tuple[int, dict, bytes]:
    chunks = body.chunks() if isinstance(body, Body) else iter([body])
    messages: list[dict] = []

    ended = False

    async def receive():
        nonlocal ended
        if ended:  # as a server does once the body is in: nothing more until the client goes
            await asyncio.Event().wait()
        piece = next(chunks, None)
        if piece is None:
            ended = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": piece, "more_body": True}

    async def send(message):
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    async_to_sync(app)(scope, receive, send)
    start = next(message for message in messages if message["type"] == "http.response.start")
    response_headers = {name.decode(): value.decode() for name, value in start["headers"]}
    content = b"".join(message.get("body", b"") for message in messages if message["type"] == "http.response.body")
    return start["status"], response_headers, content


def _logged_in_session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.mark.django_db(transaction=True)  # the guard queries sessions as the server does, between transactions
def test_an_anonymous_60_mb_post_is_refused_before_a_byte_of_it_is_read():
    recorder = Recorder()
    for headers in ({"content-length": str(60 * MB)}, {"transfer-encoding": "chunked"}):
        body = Body(60 * MB)
        status, response_headers, content = _call(
            RequestGuard(recorder), "POST", "/documents/upload/", headers={**headers, "hx-request": "true"}, body=body
        )

        assert status == 403 and b"You are not logged in" in content
        assert body.sent == 0 and recorder.read is None
        assert response_headers["connection"] == "close" and response_headers["hx-reswap"] == "none"


@pytest.mark.django_db(transaction=True)  # the guard queries sessions as the server does, between transactions
def test_an_anonymous_body_is_refused_unread_whatever_the_method():
    """Django reads a GET's or an OPTIONS's body as it reads a POST's (whole, to memory then a temporary file), so
    a body sent with any method needs a logged-in session: no anonymous client gets 50 MB read by sending a GET."""
    for method in ("GET", "HEAD", "OPTIONS"):
        recorder = Recorder()
        body = Body(50 * MB)
        status, _, content = _call(
            RequestGuard(recorder), method, "/healthz", headers={"content-length": str(50 * MB)}, body=body
        )

        assert status == 403 and b"You are not logged in" in content, method
        assert body.sent == 0 and recorder.read is None


@pytest.mark.django_db(transaction=True)  # the guard queries sessions as the server does, between transactions
def test_an_api_request_without_a_token_is_refused_unread_as_the_api_refuses_a_wrong_one():
    recorder, body = Recorder(), Body(2 * MB)

    status, response_headers, content = _call(
        RequestGuard(recorder),
        "POST",
        "/v1/chat/completions",
        headers={"content-length": str(2 * MB), "content-type": "application/json"},
        body=body,
    )

    assert status == 401 and response_headers["content-type"] == "application/json"
    assert json.loads(content)["error"]["code"] == "invalid_api_key"
    assert response_headers["www-authenticate"] == 'Bearer realm="kb"'
    assert body.sent == 0 and recorder.read is None


@pytest.mark.django_db(transaction=True)  # the guard queries tokens as the server does, between transactions
def test_an_api_body_with_a_token_that_may_not_act_is_refused_unread():
    """Any Authorization header would otherwise let an anonymous client have a body read up to the size limit."""
    owner = make_user()
    revoked = api_token_create(acting_user=owner, name="old", scopes=["ask"])
    api_token_revoke(acting_user=owner, token_id=revoked.token.pk)
    logged_in = _logged_in_session(owner)
    for headers in (
        {"authorization": "Bearer kb_0123456789ab_" + "x" * 43},  # well formed, made up
        {"authorization": "Bearer sk-anything"},
        {"authorization": f"Bearer {revoked.plaintext}"},
        {"authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
        {"cookie": f"sessionid={logged_in}"},  # the API reads no session
    ):
        recorder, body = Recorder(), Body(50 * MB)
        status, _, content = _call(
            RequestGuard(recorder),
            "POST",
            "/v1/chat/completions",
            headers={"content-length": str(50 * MB), "content-type": "application/json", **headers},
            body=body,
        )

        assert status == 401 and json.loads(content)["error"]["code"] == "invalid_api_key", headers
        assert body.sent == 0 and recorder.read is None


@pytest.mark.django_db(transaction=True)  # the guard queries sessions as the server does, between transactions
def test_a_session_cookie_that_names_no_logged_in_session_is_anonymous():
    recorder = Recorder()
    anonymous_session = SessionStore()
    anonymous_session["seen"] = True
    anonymous_session.create()
    for key in (
        "made-up-key-0123456789abcdefghij",
        '"\\000\\000\\000\\000\\000\\000\\000\\000"',
        anonymous_session.session_key,
    ):
        body = Body(MB)
        status, _, _ = _call(
            RequestGuard(recorder),
            "POST",
            "/documents/upload/",
            headers={"content-length": str(MB), "cookie": f"sessionid={key}"},
            body=body,
        )
        assert status == 403 and body.sent == 0 and recorder.read is None


@pytest.mark.django_db(transaction=True)  # the guard queries sessions as the server does, between transactions
def test_a_logged_in_session_over_the_limit_gets_413_unread_by_its_length_or_once_it_grows_past_it(settings):
    settings.KB_REQUEST_MAX_BYTES = 5 * MB
    cookie = f"sessionid={_logged_in_session(make_user())}"
    recorder = Recorder()

    declared = Body(6 * MB)
    status, _, content = _call(
        RequestGuard(recorder),
        "POST",
        "/documents/upload/",
        headers={"content-length": str(6 * MB), "cookie": cookie},
        body=declared,
    )
    assert status == 413 and b"larger than the limit of 5 MB" in content and declared.sent == 0

    streamed = Body(60 * MB)
    status, _, content = _call(
        RequestGuard(recorder),
        "POST",
        "/documents/upload/",
        headers={"transfer-encoding": "chunked", "cookie": cookie},
        body=streamed,
    )
    assert status == 413 and b"larger than the limit" in content
    assert streamed.sent == 6 * MB and recorder.read is None  # stopped at the first chunk past the limit

    within = Body(5 * MB)
    status, _, _ = _call(
        RequestGuard(recorder),
        "POST",
        "/documents/upload/",
        headers={"content-length": str(5 * MB), "cookie": cookie},
        body=within,
    )
    assert status == 200 and recorder.read == 5 * MB


@pytest.mark.django_db(transaction=True)  # the guard queries sessions as the server does, between transactions
def test_login_forms_bearer_token_requests_and_reads_pass_to_the_app():
    token = api_token_create(acting_user=make_user(), name="guard", scopes=["ask"]).plaintext
    for method, path, headers in [
        ("POST", "/accounts/login/", {}),
        ("POST", "/admin/login/", {}),
        ("POST", "/v1/ask", {"authorization": f"Bearer {token}"}),
        ("GET", "/healthz", {"content-length": "0"}),  # a read without a body
        ("POST", "/documents/upload/", {"content-length": "0"}),  # no body to read: the app answers (login)
    ]:
        recorder = Recorder()
        status, _, _ = _call(
            RequestGuard(recorder), method, path, headers={"content-length": "4", **headers}, body=b"name"
        )
        assert status == 200 and recorder.read is not None, path

    recorder = Recorder()
    status, _, _ = _call(  # a token header opens only the API's paths
        RequestGuard(recorder),
        "POST",
        "/documents/upload/",
        headers={"content-length": "4", "authorization": "Bearer x"},
        body=b"name",
    )
    assert status == 403 and recorder.read is None


@pytest.mark.django_db(transaction=True)
def test_an_upload_through_the_guard_and_django_still_works_and_an_oversize_one_is_413(settings):
    settings.KB_REQUEST_MAX_BYTES = 2 * MB
    department = make_department("Legal")
    collection = make_collection(owner=department)
    admin = make_user(department=department, admin=True)
    csrf = _get_new_csrf_string()
    headers = {
        "content-type": MULTIPART_CONTENT,
        "cookie": f"sessionid={_logged_in_session(admin)}; csrftoken={csrf}",
        "x-csrftoken": csrf,
        "hx-request": "true",
        "host": "localhost",
    }
    app = RequestGuard(get_asgi_application())

    def upload(data: bytes) -> tuple[int, bytes]:
        body = encode_multipart(BOUNDARY, {"collection": str(collection.pk), "files": _File("notes.md", data)})
        status, _, content = _call(
            app, "POST", "/documents/upload/", headers={**headers, "content-length": str(len(body))}, body=body
        )
        return status, content

    status, content = upload(b"# Notes\nThe notice period is three months.\n")
    assert status == 200 and b"Queued 1 file for ingestion." in content
    assert list(DocumentVersion.objects.values_list("document__original_name", flat=True)) == ["notes.md"]

    status, content = upload(b"x" * (3 * MB))
    assert status == 413 and b"larger than the limit" in content
    assert DocumentVersion.objects.count() == 1


class _File:
    """What encode_multipart sends as a file: a name and its content."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data = name, data

    def read(self) -> bytes:
        return self.data


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_the_running_server_answers_an_anonymous_60_mb_upload_at_once_without_taking_it(live_stack):
    host, port = live_stack["url"].removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /documents/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: " + str(60 * MB).encode() + b"\r\n\r\n" + b"x" * 65536
        )
        answer = _http_answer(connection)

    assert answer.startswith("HTTP/1.1 403") and "You are not logged in" in answer
    assert time.monotonic() - started < 5  # 60 MB are neither awaited nor read


def _http_answer(connection: socket.socket) -> str:
    """The response's head and its body, as long as its Content-Length says."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(4096)
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        body += connection.recv(4096)
    return (head + b"\r\n\r\n" + body).decode()
