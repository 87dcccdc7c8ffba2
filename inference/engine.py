from collections.abc import AsyncIterator
from typing import Protocol

from inference.chat_template import ChatTemplate
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
