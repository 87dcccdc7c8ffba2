"""What the API refuses, and how, in this process: only a valid token in `Authorization: Bearer` gets in (no session,
no other header), each endpoint needs its scope, and a body the API cannot use is a 400 naming the field."""

import json
import sys

import pytest
from django.urls import reverse

from kb.accounts.services import api_token_create
from tests.factories import PASSWORD, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db

CHAT = "/v1/chat/completions"
QUESTION = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "Why indentation?"}]}


@pytest.fixture
def alice():
    return make_user(department=make_department("Engineering"), username="alice")


def _token(user, scopes=("ask", "search", "embeddings")) -> str:
    return api_token_create(acting_user=user, name="Tests", scopes=list(scopes)).plaintext


def _post(client, path, body, *, token="", **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data, content_type="application/json", headers=headers)


def _error(response) -> dict:
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    return error


def test_no_token_is_401_with_the_openai_error_shape(client):
    response = _post(client, CHAT, QUESTION)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert _error(response)["code"] == "invalid_api_key"


def test_a_logged_in_browser_session_is_no_way_in(client, alice):
    """No session and no CSRF token count: without a token, the API refuses whoever the cookie names."""
    assert client.login(username="alice", password=PASSWORD)

    assert _post(client, CHAT, QUESTION).status_code == 401
    assert client.get("/v1/models").status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        lambda token: {"Authorization": f"Basic {token}"},
        lambda token: {"Authorization": token},
        lambda token: {"Authorization": "Bearer"},
        lambda token: {"X-Api-Key": token},
        lambda token: {"Authorization": f"Bearer {token}x"},
        lambda token: {"X-Forwarded-User": "alice", "Remote-User": "alice", "X-Remote-User": "alice"},
    ],
)
def test_no_other_header_or_scheme_stands_in_for_the_token(client, alice, headers):
    token = _token(alice)
    assert client.get("/v1/models", headers=headers(token)).status_code == 401


def test_a_token_in_the_query_string_is_not_read(client, alice):
    assert client.get(f"/v1/models?api_key={_token(alice)}").status_code == 401


def test_each_endpoint_needs_its_scope(client, alice):
    embeddings_only = _token(alice, scopes=["embeddings"])

    asked = _post(client, CHAT, QUESTION, token=embeddings_only)
    searched = _post(client, "/v1/search", {"query": "indentation"}, token=embeddings_only)

    assert asked.status_code == searched.status_code == 403
    assert _error(asked)["code"] == "insufficient_scope" and "“ask”" in _error(asked)["message"]
    assert "“search”" in _error(searched)["message"]


def test_a_deactivated_user_s_token_is_refused_at_once(client, alice):
    token = _token(alice)
    assert _post(client, "/v1/search", {"query": "indentation"}, token=token).status_code == 200

    alice.is_active = False
    alice.save(update_fields=["is_active"])

    assert _post(client, "/v1/search", {"query": "indentation"}, token=token).status_code == 401


def test_another_method_is_405_in_the_api_s_error_shape(client, alice):
    response = client.get(CHAT, headers={"Authorization": f"Bearer {_token(alice)}"})
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert _error(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ("not json", None),
        ("[1, 2]", None),
        ("{" * 100_000, None),
        ({"messages": QUESTION["messages"]}, "model"),
        ({**QUESTION, "messages": []}, "messages"),
        ({**QUESTION, "messages": [{"role": "assistant", "content": "Hello"}]}, "messages"),
        ({**QUESTION, "messages": [{"role": "tool", "content": "42"}]}, "messages[0].role"),
        ({**QUESTION, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
        ({**QUESTION, "messages": [{"role": "user", "content": "   "}]}, "messages"),
        ({**QUESTION, "messages": [{"role": "user", "content": "why\x00"}]}, "messages[0].content"),
        ({**QUESTION, "messages": [{"role": "user", "content": "why \ud800"}]}, "messages[0].content"),
        ({**QUESTION, "messages": [{"role": "user", "content": "w" * 2001}]}, "messages"),
        ({**QUESTION, "n": 2}, "n"),
        ({**QUESTION, "stream": "yes"}, "stream"),
        ({**QUESTION, "max_tokens": 0}, "max_tokens"),
        ({**QUESTION, "max_tokens": True}, "max_tokens"),
        ({**QUESTION, "kb_scope": {"collections": ["1"]}}, "kb_scope.collections"),
        ({**QUESTION, "kb_scope": {"collections": [2**63]}}, "kb_scope.collections"),
        ({**QUESTION, "kb_scope": []}, "kb_scope"),
    ],
)
def test_a_body_the_api_cannot_use_is_a_400_naming_the_field(client, alice, body, param):
    response = _post(client, CHAT, body, token=_token(alice))

    assert response.status_code == 400
    assert _error(response)["param"] == param


def test_a_body_nested_as_deep_as_json_reads_is_refused_by_its_field_not_a_server_error(client, alice, settings):
    """The NUL and surrogate check walks the whole body: at every depth the JSON parser accepts (up to the stack
    that is left, which the server's own call stack decides), the answer is a 400 too, never a RecursionError."""
    settings.KB_API_RATE_LIMIT = 0  # one request for each depth
    token = _token(alice)
    limit = sys.getrecursionlimit()
    statuses = set()
    for depth in range(limit - 200, limit + 1):
        body = '{"query": "x", "kb_scope": ' + '{"a": ' * depth + '"\\u0000"' + "}" * depth + "}"
        statuses.add(_post(client, "/v1/search", body, token=token).status_code)

    assert statuses == {400}


def test_a_form_is_not_json(client, alice):
    token = _token(alice)
    headers = {"Authorization": f"Bearer {token}"}
    multipart = client.post(CHAT, {"model": "smollm2-135m", "messages": "Why?"}, headers=headers)
    urlencoded = client.post(
        CHAT, "model=smollm2-135m", content_type="application/x-www-form-urlencoded", headers=headers
    )
    assert multipart.status_code == urlencoded.status_code == 400
    assert _error(multipart)["message"] == "The body is not JSON."


def test_a_collection_the_caller_may_not_read_is_refused_as_one_that_does_not_exist(client, alice):
    secret = make_collection(owner=make_department("Legal"), name="Merger plans")
    token = _token(alice)

    unreadable = _post(client, CHAT, {**QUESTION, "kb_scope": {"collections": [secret.pk]}}, token=token)
    missing = _post(client, CHAT, {**QUESTION, "kb_scope": {"collections": [secret.pk + 1000]}}, token=token)
    searched = _post(client, "/v1/search", {"query": "merger", "kb_scope": {"collections": [secret.pk]}}, token=token)

    assert unreadable.status_code == missing.status_code == searched.status_code == 400
    assert _error(unreadable) == _error(missing) == _error(searched)
    assert "Merger" not in unreadable.content.decode()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "all-MiniLM-L6-v2", "input": []}, "input"),
        ({"model": "all-MiniLM-L6-v2", "input": [""]}, "input"),
        ({"model": "all-MiniLM-L6-v2", "input": [[1, 2, 3]]}, "input"),
        ({"model": "all-MiniLM-L6-v2", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 128}, "dimensions"),
    ],
)
def test_embeddings_refuse_what_they_cannot_embed(client, alice, body, param):
    response = _post(client, "/v1/embeddings", body, token=_token(alice))
    assert response.status_code == 400 and _error(response)["param"] == param


def test_an_unknown_embedding_model_is_404(client, alice):
    response = _post(client, "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}, token=_token(alice))
    assert response.status_code == 404 and _error(response)["code"] == "model_not_found"


def test_search_returns_nothing_it_was_not_asked_for_and_refuses_a_bad_mode(client, alice):
    token = _token(alice)
    assert _post(client, "/v1/search", {"query": "x", "mode": "fuzzy"}, token=token).status_code == 400
    assert _post(client, "/v1/search", {"query": "x", "k": 51}, token=token).status_code == 400
    found = _post(client, "/v1/search", {"query": "indentation"}, token=token)
    assert found.status_code == 200 and found.json() == {"object": "list", "data": []}


def test_a_search_through_the_api_is_recorded_in_the_audit_trail_and_a_refused_one_is_not(client, alice):
    from kb.audit.models import QueryRecord

    token = _token(alice)
    _post(client, "/v1/search", {"query": "x", "mode": "fuzzy"}, token=token)
    _post(client, "/v1/search", {"query": "indentation", "k": 3, "mode": "keyword"}, token=token)

    record = QueryRecord.objects.get()
    assert (record.user, record.question, record.channel) == (alice, "indentation", "api-search")
    assert record.scope == {"mode": "keyword", "k": 3, "filters": {}} and record.flags == ["no_passages"]


def test_the_description_is_served_without_a_token(client):
    response = client.get(reverse("api:openapi"))
    assert response.status_code == 200
    description = response.json()
    assert description["openapi"].startswith("3.1")
    assert set(description["paths"]) == {"/v1/models", "/v1/chat/completions", "/v1/embeddings", "/v1/search"}


def test_the_public_description_asks_the_answering_backend_for_its_models_at_most_every_half_minute(
    client, monkeypatch
):
    from kb.api import views

    backend = views.answer_backend()
    asked = []

    class Counting:
        def describe(self):
            asked.append(1)
            return backend.describe()

    monkeypatch.setattr(views, "answer_backend", Counting)
    monkeypatch.setattr(views, "_model_names_read", (float("-inf"), None))

    model = backend.describe()[0]["id"]
    descriptions = [client.get(reverse("api:openapi")).content.decode() for _ in range(5)]

    assert len(asked) == 1 and all(f'"enum": ["{model}"]' in text for text in descriptions)
    monkeypatch.setattr(views, "_model_names_read", (views.time.monotonic() - views.MODEL_NAMES_KEPT_SECONDS, None))
    client.get(reverse("api:openapi"))
    assert len(asked) == 2
