"""The API's OpenAPI 3.1 description, served at /v1/openapi.json (and checked against the server by schemathesis in
tests/api/test_openapi.py). Limits come from the code that enforces them."""

from kb.accounts.models import ApiToken
from kb.api.bodies import (
    HISTORY_ROLES,
    IGNORED_ROLES,
    MAX_ANSWER_TOKENS,
    MAX_EMBEDDING_INPUT_CHARS,
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGES,
    MAX_SCOPE_COLLECTIONS,
    MAX_SEARCH_QUERY_CHARS,
    MAX_SEARCH_RESULTS,
    SEARCH_MODES,
)
from kb.chat.services import MAX_QUESTION_CHARS
from kb.documents.embedding_models import BUNDLED_MODEL_NAME

NULLABLE_STRING = {"type": ["string", "null"]}
_ERROR_STATUSES = {
    "400": "The request cannot be used: `error.param` names the field.",
    "401": "No valid personal API token (missing, wrong, revoked, expired, or its user deactivated).",
    "403": "The token lacks the scope this endpoint needs.",
    "404": "No such model.",
    "405": "Another method is expected.",
    "429": "The requests per minute of the token's user (over all their tokens) are spent; `Retry-After` says in how "
    "many seconds to retry.",
    "502": "The model failed while answering.",
    "503": "No model can take the request now; `Retry-After` says when to retry.",
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, *, examples: dict | None = None) -> dict:
    content: dict = {"schema": schema}
    if examples:
        content["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"application/json": content}


def _errors(*statuses: str) -> dict:
    return {
        status: {"description": _ERROR_STATUSES[status], "content": _json(_ref("Error"))}
        for status in ("400", "401", "405", *statuses)
    }


def _scope_schema() -> dict:
    return {
        "type": "object",
        "description": "Narrows the search to these collections, by id; a collection the token's user may not read "
        "is refused (400) as one that does not exist is. Absent: everything the user may read.",
        "properties": {
            "collections": {
                "type": "array",
                "maxItems": MAX_SCOPE_COLLECTIONS,
                "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            }
        },
    }


def _passage_schema(*, numbered: bool) -> dict:
    properties = {
        "chunk_id": {"type": "integer"},
        "document_id": {"type": "integer"},
        "version_id": {"type": "integer"},
        "document_title": {"type": "string"},
        "collection": {"type": "string", "description": "the collection's name"},
        "heading": {"type": "string"},
        "text": {"type": "string", "description": "the passage's text as the model was given it"},
        "char_start": {"type": "integer", "description": "where the passage starts in its version's text"},
        "char_end": {"type": "integer"},
        "url": {"type": "string", "description": "the path of the page that shows the passage (log in to open it)"},
    }
    required = list(properties)
    if numbered:
        properties = {"number": {"type": "integer", "description": "its [n] in the answer"}, **properties}
        required.insert(0, "number")
    return {"type": "object", "required": required, "properties": properties}


def openapi_description(*, chat_models: list[str] | None = None, embedding_model: str | None = None) -> dict:
    """`chat_models` and `embedding_model`, where known, are the only values `model` takes."""
    example_model = chat_models[0] if chat_models else "smollm2-135m"
    question = [{"role": "user", "content": "Where do visitors park?"}]
    chat_model = {"type": "string", "description": "A chat model's id from /v1/models."}
    if chat_models:
        chat_model["enum"] = chat_models
    embedding = {"type": "string", "description": "The embedding model's id from /v1/models."}
    if embedding_model:
        embedding["enum"] = [embedding_model]
    message_content = {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "text"],
                    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                },
            },
            {"type": "null"},
        ]
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Knowledge base API",
            "version": "1",
            "description": "OpenAI-compatible: answers come from the passages the token's user may read, with the "
            "permission filter, context and audit record of the browser's ask page. Authenticate with a personal "
            "API token (`Authorization: Bearer kb_…`, made on the API tokens page). Extension fields start with "
            "`kb_`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "summary": "The chat models of the route and the embedding model",
                    "responses": {
                        "200": {"description": "The models", "content": _json(_ref("ModelList"))},
                        **_errors("429", "503"),
                    },
                }
            },
            "/v1/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "summary": "Answer the last user message from the knowledge base (needs the `ask` scope)",
                    "description": "The last message is the question; earlier user messages each answered by the "
                    "assistant message after them are the conversation's history; system and developer messages "
                    "are not read (the knowledge base's own instructions keep answers on its passages). Sampling "
                    "follows the model's preset: `max_tokens` may shorten the answer; `temperature`, `top_p` and "
                    "the like are accepted and not used. With `stream`, server-sent events `data: {chunk}` end "
                    "with `data: [DONE]`; the chunk with the finish reason carries `kb_citations` and `kb_sources`. "
                    "Each answer is recorded in the audit trail (channel `api`).",
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            _ref("ChatCompletionRequest"),
                            examples={
                                "whole": {"model": example_model, "messages": question, "max_tokens": 200},
                                "streamed": {
                                    "model": example_model,
                                    "messages": question,
                                    "stream": True,
                                    "stream_options": {"include_usage": True},
                                },
                            },
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "The answer, whole or streamed",
                            "content": {
                                "application/json": {"schema": _ref("ChatCompletion")},
                                "text/event-stream": {
                                    "schema": {
                                        "description": "Each event's data is a chat.completion.chunk as JSON (the "
                                        "one with the finish reason carries kb_citations, kb_sources, kb_query_id; "
                                        "with stream_options.include_usage a last one carries usage), or an "
                                        '{"error": ...} when the model fails mid-answer, then [DONE].',
                                        "type": "object",
                                        "required": ["data"],
                                        "properties": {"data": {"type": "string"}},
                                    }
                                },
                            },
                        },
                        **_errors("403", "404", "429", "502", "503"),
                    },
                }
            },
            "/v1/embeddings": {
                "post": {
                    "operationId": "createEmbedding",
                    "summary": "Embed texts with the knowledge base's embedding model (needs the `embeddings` scope)",
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            _ref("EmbeddingRequest"),
                            examples={
                                "texts": {
                                    "model": embedding_model or BUNDLED_MODEL_NAME,
                                    "input": ["Where do visitors park?", "Parking at the Leeds office"],
                                    "encoding_format": "float",
                                }
                            },
                        ),
                    },
                    "responses": {
                        "200": {"description": "One unit-length vector per text", "content": _json(_ref("Embeddings"))},
                        **_errors("403", "404", "429"),
                    },
                }
            },
            "/v1/search": {
                "post": {
                    "operationId": "searchPassages",
                    "summary": "Ranked passages the token's user may read, as the Search page finds them (needs the "
                    "`search` scope; no model involved)",
                    "description": "Each search is recorded in the audit trail (channel `api-search`), with the "
                    "passages it returned.",
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            _ref("SearchRequest"), examples={"query": {"query": "visitor parking", "k": 5}}
                        ),
                    },
                    "responses": {
                        "200": {"description": "The passages, best first", "content": _json(_ref("SearchResults"))},
                        **_errors("403", "429"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"A personal API token; its scopes: {', '.join(ApiToken.Scope.values)}.",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["message", "type", "code"],
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "code": NULLABLE_STRING,
                                "param": NULLABLE_STRING,
                            },
                        }
                    },
                },
                "ModelList": {
                    "type": "object",
                    "required": ["object", "data"],
                    "properties": {
                        "object": {"const": "list"},
                        "data": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "object", "created", "owned_by", "kb_kind"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "object": {"const": "model"},
                                    "created": {"type": "integer"},
                                    "owned_by": {"type": "string"},
                                    "kb_kind": {"enum": ["chat", "embedding"]},
                                    "kb_state": {"type": "string", "description": "chat models: ready, or why not"},
                                    "kb_context_length": {"type": ["integer", "null"]},
                                    "kb_dimensions": {"type": "integer"},
                                },
                            },
                        },
                    },
                },
                "ChatCompletionRequest": {
                    "type": "object",
                    "required": ["model", "messages"],
                    "properties": {
                        "model": chat_model,
                        "messages": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_MESSAGES,
                            "description": f"The last is the user's question, of at most {MAX_QUESTION_CHARS} "
                            "characters.",
                            "items": {
                                "type": "object",
                                "required": ["role", "content"],
                                "properties": {
                                    "role": {"enum": [*HISTORY_ROLES, *IGNORED_ROLES]},
                                    "content": message_content,
                                },
                            },
                        },
                        "stream": {"type": "boolean", "default": False},
                        "stream_options": {
                            "type": "object",
                            "properties": {"include_usage": {"type": "boolean"}},
                        },
                        "max_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_ANSWER_TOKENS},
                        "max_completion_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_ANSWER_TOKENS},
                        "n": {"const": 1},
                        "kb_scope": _scope_schema(),
                        "kb_thinking": {
                            "type": "boolean",
                            "description": "The model reasons first where it can (its reasoning streams as "
                            "`reasoning_content`); default: the server's KB_LLM_ENABLE_THINKING.",
                        },
                    },
                },
                "ChatCompletion": {
                    "type": "object",
                    "required": ["id", "object", "created", "model", "choices", "usage", "kb_citations", "kb_sources"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"const": "chat.completion"},
                        "created": {"type": "integer"},
                        "model": {"type": "string", "description": "the model that answered"},
                        "choices": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["index", "message", "finish_reason"],
                                "properties": {
                                    "index": {"type": "integer"},
                                    "message": {
                                        "type": "object",
                                        "required": ["role", "content"],
                                        "properties": {
                                            "role": {"const": "assistant"},
                                            "content": {"type": "string"},
                                            "reasoning_content": {"type": "string"},
                                        },
                                    },
                                    "finish_reason": {"enum": ["stop", "length"]},
                                },
                            },
                        },
                        "usage": {
                            "type": "object",
                            "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
                            "properties": {
                                "prompt_tokens": {"type": "integer"},
                                "completion_tokens": {"type": "integer"},
                                "total_tokens": {"type": "integer"},
                            },
                        },
                        "kb_citations": {
                            "type": "array",
                            "description": "The passages the answer cites as [n], in order of first citation.",
                            "items": _ref("NumberedPassage"),
                        },
                        "kb_sources": {
                            "type": "array",
                            "description": "Every passage the model was given, numbered as the answer cites them; "
                            "empty when nothing the user may read matched (the model is then not asked).",
                            "items": _ref("NumberedPassage"),
                        },
                        "kb_query_id": {"type": "integer", "description": "the answer's record in the audit trail"},
                    },
                },
                "NumberedPassage": _passage_schema(numbered=True),
                "EmbeddingRequest": {
                    "type": "object",
                    "required": ["model", "input"],
                    "properties": {
                        "model": embedding,
                        "input": {
                            "oneOf": [
                                {"type": "string", "minLength": 1, "maxLength": MAX_EMBEDDING_INPUT_CHARS},
                                {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": MAX_EMBEDDING_INPUTS,
                                    "items": {"type": "string", "minLength": 1, "maxLength": MAX_EMBEDDING_INPUT_CHARS},
                                },
                            ]
                        },
                        "encoding_format": {"enum": ["float", "base64"], "default": "float"},
                        "dimensions": {"type": "integer", "minimum": 1},
                    },
                },
                "Embeddings": {
                    "type": "object",
                    "required": ["object", "model", "data", "usage"],
                    "properties": {
                        "object": {"const": "list"},
                        "model": {"type": "string"},
                        "data": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["object", "index", "embedding"],
                                "properties": {
                                    "object": {"const": "embedding"},
                                    "index": {"type": "integer"},
                                    "embedding": {
                                        "oneOf": [
                                            {"type": "array", "items": {"type": "number"}},
                                            {"type": "string", "description": "base64 of little-endian float32"},
                                        ]
                                    },
                                },
                            },
                        },
                        "usage": {
                            "type": "object",
                            "required": ["prompt_tokens", "total_tokens"],
                            "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}},
                        },
                    },
                },
                "SearchRequest": {
                    "type": "object",
                    "required": ["query"],
                    "properties": {
                        "query": {"type": "string", "minLength": 1, "maxLength": MAX_SEARCH_QUERY_CHARS},
                        "k": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_RESULTS, "default": 10},
                        "mode": {"enum": list(SEARCH_MODES), "default": "hybrid"},
                        "kb_scope": _scope_schema(),
                    },
                },
                "SearchResults": {
                    "type": "object",
                    "required": ["object", "data"],
                    "properties": {
                        "object": {"const": "list"},
                        "data": {
                            "type": "array",
                            "items": {
                                "allOf": [
                                    _passage_schema(numbered=False),
                                    {
                                        "type": "object",
                                        "required": ["score"],
                                        "properties": {"score": {"type": "number"}},
                                    },
                                ]
                            },
                        },
                    },
                },
            },
        },
    }
