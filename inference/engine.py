from collections.abc import AsyncIterator
from typing import Any, Protocol

from inference.chat_template import ChatMessage, ChatTemplate
from inference.types import Delta, EngineInfo, GenerationParams


class Engine(Protocol):
    info: EngineInfo
    chat_template: ChatTemplate

    def stream(self, prompt: str, params: GenerationParams) -> AsyncIterator[Delta]:
        """Yield text deltas for an already rendered prompt, then one delta with usage.

        Closing the iterator early (the browser tab went away) stops generation and frees the engine.
        """
        ...

    def count_tokens(self, text: str) -> int: ...

    async def close(self) -> None: ...


class ChatBackend(Protocol):
    """What an application asks of its models: a conversation in, a routed stream out.

    The in-process Router and the InferenceClient of a serving process both answer this way.
    """

    def stream_chat(
        self,
        messages: list[ChatMessage],
        params: GenerationParams,
        *,
        enable_thinking: bool = False,
        start_at: str | None = None,
    ) -> AsyncIterator[Delta]:
        """First a delta with `route`, then text deltas (answer or thinking channel), then one with usage.

        `start_at` names the route's model to try first (the ones after it follow when it is busy); None: the
        route's first."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def describe(self) -> list[dict[str, Any]]:
        """The models behind it, their state and load, as the serving process's /v1/models lists them."""
        ...

    def readiness(self) -> dict[str, Any]:
        """{"ready": whether every model is loaded, "models": {name: "ready" or why not}}, as /ready answers."""
        ...

    def metrics_exposition(self) -> str:
        """The engines' figures in Prometheus text form, as the serving process's /metrics answers."""
        ...
