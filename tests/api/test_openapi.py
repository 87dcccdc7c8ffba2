"""The API's OpenAPI description checked against the running server by schemathesis: neither its examples, nor the
requests schemathesis makes from it, valid or not, are a server error, and every answer has a status, content type
and body the description documents. A few requests per operation; answers a few tokens long (two cores)."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from kb.accounts.services import api_token_create
from tests.factories import PARKING_NOTE, ingested_document, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db(transaction=True)

GENERATED = 6  # requests generated per operation and kind (valid, invalid)
ANSWER_TOKENS = 4
POSTS = ["/v1/chat/completions", "/v1/embeddings", "/v1/search"]
OPERATIONS = [("GET", "/v1/models"), *(("POST", path) for path in POSTS)]
# A GET of /v1/models takes nothing: no example, nothing invalid to send.
REQUESTS = [
    ("GET", "/v1/models", "valid"),
    *(("POST", path, kind) for path in POSTS for kind in ("examples", "valid", "invalid")),
]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def reader():
    """Someone who reads one short note: the examples' questions have passages to be answered from."""
    department = make_department("Facilities")
    ingested_document(collection=make_collection(owner=department), name="parking.md", content=PARKING_NOTE)
    return make_user(department=department)


def _described(live_stack):
    return schemathesis.openapi.from_url(f"{live_stack['url']}/v1/openapi.json")


def test_every_operation_is_checked(live_stack):
    described = {(op.ok().method.upper(), op.ok().path) for op in _described(live_stack).get_all_operations()}
    assert described == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "kind"), REQUESTS)
def test_no_request_is_a_server_error_and_every_answer_is_as_described(live_stack, reader, method, path, kind):
    operation = _described(live_stack)[path][method]
    if kind == "examples":
        examples = operation.get_strategies_from_examples()
        strategy, count = st.one_of(examples), 2 * len(examples)
    else:
        mode = GenerationMode.POSITIVE if kind == "valid" else GenerationMode.NEGATIVE
        strategy, count = operation.as_strategy(generation_mode=mode), GENERATED
    responses = []
    # The rate limit counts the reader's requests over all their tokens: one reader per test stays far below it.
    token = api_token_create(acting_user=reader, name="schemathesis", scopes=["ask", "search", "embeddings"])

    @given(case=strategy)
    @settings(max_examples=count, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def request(case):
        if isinstance(case.body, dict) and path == "/v1/chat/completions":
            case.body["max_tokens"] = ANSWER_TOKENS
        responses.append(
            case.call_and_validate(
                base_url=live_stack["url"], headers={"Authorization": f"Bearer {token.plaintext}"}, checks=CHECKS
            )
        )

    request()
    if kind == "examples":  # the examples are requests that work
        assert {response.status_code for response in responses} == {200}
