"""Request bodies read and checked: anything a client can send that the API cannot use is a 400 naming the field,
never a server error."""

import json
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, RawPostDataException

from kb.api.errors import invalid
from kb.chat.selectors import Turn
from kb.platform.forms import BIGINT_MAX

MAX_MESSAGES = 200
MAX_HISTORY_MESSAGE_CHARS = 32_000
MAX_SCOPE_COLLECTIONS = 100
MAX_ANSWER_TOKENS = 100_000
MAX_EMBEDDING_INPUTS = 128
MAX_EMBEDDING_INPUT_CHARS = 20_000
MAX_SEARCH_QUERY_CHARS = 2000
MAX_SEARCH_RESULTS = 50
SEARCH_MODES = ("hybrid", "dense", "keyword")
# Roles whose messages make the history; a client's system (or developer) message is left out: the knowledge base's
# own instructions keep answers on the passages.
HISTORY_ROLES = ("user", "assistant")
IGNORED_ROLES = ("system", "developer")


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The body as a JSON object whose every string PostgreSQL can store: no NUL character, no lone surrogate (a
    JSON escape such as \\ud800 that is no character in UTF-8)."""
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, RecursionError, RawPostDataException):  # the last: a form, read as one already
        raise invalid("The body is not JSON.") from None
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.")
    _refuse_unstorable(body)
    return body


def _refuse_unstorable(body: dict[str, Any]) -> None:
    """Every string of the body, keys included, in document order. A loop, not a recursion: the parser accepts a
    body nested as deep as the stack it has left, and a walk that needed more would end in a RecursionError."""
    pending: list[tuple[Any, str]] = [(body, "")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                raise invalid("A NUL character cannot be stored; remove it.", param=path or None)
            try:
                value.encode()
            except UnicodeEncodeError:
                raise invalid(
                    "The text holds an escape that is no character (a lone surrogate).", param=path or None
                ) from None
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                pending += [(item, f"{path}.{key}" if path else key), (key, path)]
        elif isinstance(value, list):
            pending += [(item, f"{path}[{index}]") for index, item in reversed(list(enumerate(value)))]


def string_field(body: dict, name: str, *, required: bool = True, default: str = "") -> str:
    value = body.get(name, None)
    if value is None and not required:
        return default
    if not isinstance(value, str):
        raise invalid(f"`{name}` must be a string.", param=name)
    return value


def bool_field(body: dict, name: str, *, default: bool) -> bool:
    value = body.get(name, None)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"`{name}` must be true or false.", param=name)
    return value


def int_field(body: dict, name: str, *, low: int, high: int) -> int | None:
    value = body.get(name, None)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():  # 5.0 is an integer to JSON Schema
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"`{name}` must be a whole number from {low} to {high}.", param=name)
    return value


def scope_collection_ids(body: dict) -> tuple[int, ...]:
    """`kb_scope.collections`: the collections to search, by id; absent: all the caller may read."""
    scope = body.get("kb_scope", None)
    if scope is None:
        return ()
    if not isinstance(scope, dict):
        raise invalid("`kb_scope` must be an object.", param="kb_scope")
    ids = scope.get("collections", None)
    if ids is None:
        return ()
    if (
        not isinstance(ids, list)
        or len(ids) > MAX_SCOPE_COLLECTIONS
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i <= BIGINT_MAX for i in ids)
    ):
        raise invalid(
            f"`kb_scope.collections` must be a list of at most {MAX_SCOPE_COLLECTIONS} collection ids.",
            param="kb_scope.collections",
        )
    return tuple(dict.fromkeys(ids))


@dataclass(frozen=True, kw_only=True)
class ChatRequest:
    model: str
    question: str  # the last message, a user's
    turns: list[Turn]  # the user and assistant messages before it, paired
    stream: bool
    include_usage: bool
    max_tokens: int | None
    collection_ids: tuple[int, ...]
    thinking: bool


def chat_request_of(body: dict, *, thinking_default: bool) -> ChatRequest:
    model = string_field(body, "model")
    if body.get("n", 1) != 1:
        raise invalid("Only one choice (`n` = 1) is answered.", param="n")
    stream = bool_field(body, "stream", default=False)
    options = body.get("stream_options", None)
    if options is not None and not isinstance(options, dict):
        raise invalid("`stream_options` must be an object.", param="stream_options")
    max_tokens = int_field(body, "max_completion_tokens", low=1, high=MAX_ANSWER_TOKENS)
    if max_tokens is None:
        max_tokens = int_field(body, "max_tokens", low=1, high=MAX_ANSWER_TOKENS)
    messages = _messages(body.get("messages", None))
    return ChatRequest(
        model=model,
        question=messages[-1][1],
        turns=_turns(messages[:-1]),
        stream=stream,
        include_usage=bool_field(options or {}, "include_usage", default=False),
        max_tokens=max_tokens,
        collection_ids=scope_collection_ids(body),
        thinking=bool_field(body, "kb_thinking", default=thinking_default),
    )


def _messages(messages: Any) -> list[tuple[str, str]]:
    """(role, text) of each message that counts; the last one is the user's question."""
    if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
        raise invalid(f"`messages` must be a list of 1 to {MAX_MESSAGES} messages.", param="messages")
    read: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise invalid("Each message must be an object with a `role` and a `content`.", param=param)
        role = message.get("role")
        if role in IGNORED_ROLES:
            continue
        if role not in HISTORY_ROLES:
            raise invalid(f"Message roles are {', '.join(HISTORY_ROLES + IGNORED_ROLES)}.", param=f"{param}.role")
        text = _text_of(message.get("content"), param=f"{param}.content")
        if len(text) > MAX_HISTORY_MESSAGE_CHARS:
            raise invalid(f"A message is limited to {MAX_HISTORY_MESSAGE_CHARS} characters.", param=param)
        read.append((role, text))
    if not read or read[-1][0] != "user":
        raise invalid("The last message must be the user's question.", param="messages")
    return read


def _text_of(content: Any, *, param: str) -> str:
    """A message's content: a string, or OpenAI's list of parts, of which only text parts are read."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise invalid('Only text content parts ({"type": "text", "text": ...}) are read.', param=param)
            texts.append(part["text"])
        return "\n".join(texts)
    raise invalid("A message's content must be a string or a list of text parts.", param=param)


def _turns(history: list[tuple[str, str]]) -> list[Turn]:
    """Each user message answered by the assistant message after it; a question left unanswered is left out."""
    turns: list[Turn] = []
    asked: str | None = None
    for role, text in history:
        if role == "user":
            asked = text
        elif asked is not None:
            if asked.strip() and text.strip():
                turns.append(Turn(question_id=None, record_id=None, question=asked, answer=text))
            asked = None
    return turns


@dataclass(frozen=True, kw_only=True)
class EmbeddingsRequest:
    model: str
    texts: list[str]
    base64: bool
    dimensions: int | None


def embeddings_request_of(body: dict) -> EmbeddingsRequest:
    model = string_field(body, "model")
    texts = body.get("input", None)
    if isinstance(texts, str):
        texts = [texts]
    if (
        not isinstance(texts, list)
        or not 1 <= len(texts) <= MAX_EMBEDDING_INPUTS
        or not all(isinstance(text, str) and 0 < len(text) <= MAX_EMBEDDING_INPUT_CHARS for text in texts)
    ):
        raise invalid(
            f"`input` must be a text or a list of 1 to {MAX_EMBEDDING_INPUTS} texts, each of 1 to "
            f"{MAX_EMBEDDING_INPUT_CHARS} characters (token arrays are not read).",
            param="input",
        )
    encoding = string_field(body, "encoding_format", required=False, default="float")
    if encoding not in ("float", "base64"):
        raise invalid("`encoding_format` is float or base64.", param="encoding_format")
    return EmbeddingsRequest(
        model=model,
        texts=texts,
        base64=encoding == "base64",
        dimensions=int_field(body, "dimensions", low=1, high=100_000),
    )


@dataclass(frozen=True, kw_only=True)
class SearchRequest:
    query: str
    k: int
    mode: str
    collection_ids: tuple[int, ...]


def search_request_of(body: dict) -> SearchRequest:
    query = " ".join(string_field(body, "query").split())
    if not query or len(query) > MAX_SEARCH_QUERY_CHARS:
        raise invalid(f"`query` must hold 1 to {MAX_SEARCH_QUERY_CHARS} characters.", param="query")
    mode = string_field(body, "mode", required=False, default="hybrid")
    if mode not in SEARCH_MODES:
        raise invalid(f"`mode` is one of {', '.join(SEARCH_MODES)}.", param="mode")
    return SearchRequest(
        query=query,
        k=int_field(body, "k", low=1, high=MAX_SEARCH_RESULTS) or 10,
        mode=mode,
        collection_ids=scope_collection_ids(body),
    )
