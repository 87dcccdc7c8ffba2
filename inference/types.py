import math
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class GenerationParams:
    """Backend-neutral sampling settings; each backend maps them in one place."""

    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 40
    max_tokens: int = 2048
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Types are checked where a request is made: a wrong one met inside an engine's generation thread reads as
        # the model failing, which takes it out of the route for everyone. Ranges are each engine's to check.
        for name in ("temperature", "top_p", "repetition_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, not {value!r}")
        for name in ("top_k", "max_tokens"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be a whole number, not {getattr(self, name)!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32
        ):
            raise ValueError(f"seed must be a whole number from 0 to {2**32 - 1}, not {self.seed!r}")
        if not isinstance(self.stop, tuple) or not all(isinstance(text, str) for text in self.stop):
            raise ValueError(f"stop must be texts, not {self.stop!r}")


@dataclass(frozen=True, kw_only=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    # Prompt tokens whose KV cache was reused (a repeated prefix); None where the engine does not say.
    cached_prompt_tokens: int | None = None


@dataclass(frozen=True, kw_only=True)
class Route:
    """Which model answered a routed request, and why the ones before it in the route did not."""

    model: str
    backend: str
    skipped: tuple[str, ...] = ()  # "qwen3.5-9b: overloaded (4 running, 16 waiting)"


@dataclass(frozen=True, kw_only=True)
class Delta:
    """One piece of a streamed answer. The last delta of a stream carries `usage` and no text; the first delta of
    a routed stream carries `route` and no text."""

    text: str = ""
    channel: Literal["answer", "thinking"] = "answer"
    usage: Usage | None = None
    route: Route | None = None


@dataclass(frozen=True, kw_only=True)
class EngineInfo:
    model: str
    backend: str
    context_length: int
    details: dict[str, str] = field(default_factory=dict)


class EngineError(RuntimeError):
    """The engine could not produce an answer; the message is safe to show to a user."""


class RequestRejected(EngineError):
    """The request itself cannot be served (a prompt longer than the context): no other engine state is implied."""


class UnknownModel(RequestRejected):
    """The request names a model the route does not have."""


def require_room_for_answer(*, prompt_tokens: int, params: GenerationParams, context_length: int) -> None:
    if prompt_tokens + params.max_tokens > context_length:
        raise RequestRejected(
            f"prompt of {prompt_tokens} tokens plus {params.max_tokens} answer tokens exceeds the "
            f"context length of {context_length}"
        )


class EngineUnavailable(EngineError):
    """No model on the route can take the request now (all down or all at their queue limit)."""

    def __init__(self, message: str, *, retry_after_seconds: int = 5):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
