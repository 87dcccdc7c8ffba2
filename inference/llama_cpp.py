"""llama.cpp through llama-cpp-python: the CPU engine and the embedded default."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.chat_template import ChatTemplate
from inference.types import (
    Delta,
    EngineError,
    EngineInfo,
    GenerationParams,
    Usage,
    require_room_for_answer,
)


@dataclass(frozen=True, kw_only=True)
class LlamaCppConfig:
    model_path: str
    n_ctx: int = 2048
    n_threads: int | None = None
    n_batch: int = 512


def sampling_kwargs(params: GenerationParams) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "max_tokens": params.max_tokens,
        "repeat_penalty": params.repetition_penalty,
        "stop": list(params.stop),
    }
    if params.seed is not None:
        kwargs["seed"] = params.seed
    return kwargs


_END_OF_STREAM = object()


class LlamaCppEngine:
    def __init__(self, config: LlamaCppConfig) -> None:
        from llama_cpp import Llama

        if not Path(config.model_path).is_file():
            raise EngineError(f"model file not found: {config.model_path}")
        started = time.perf_counter()
        self._llama = Llama(
            model_path=config.model_path,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            n_batch=config.n_batch,
            verbose=False,
        )
        self.load_seconds = time.perf_counter() - started
        metadata = self._llama.metadata
        self.chat_template = ChatTemplate(
            metadata["tokenizer.chat_template"],
            bos_token=self._token_text(self._llama.token_bos()),
            eos_token=self._token_text(self._llama.token_eos()),
        )
        self.info = EngineInfo(
            model=Path(config.model_path).stem,
            backend="llama_cpp",
            context_length=config.n_ctx,
            details={"model_path": config.model_path},
        )
        # One llama.cpp context cannot decode two sequences at once.
        self._generation_lock = threading.Lock()

    def _token_text(self, token_id: int) -> str:
        if token_id < 0:
            return ""
        return self._llama.detokenize([token_id], special=True).decode("utf-8", errors="replace")

    def _tokenize(self, text: str) -> list[int]:
        # The chat template already wrote any BOS the model wants.
        return self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    async def stream(self, prompt: str, params: GenerationParams) -> AsyncIterator[Delta]:
        prompt_tokens = self._tokenize(prompt)
        require_room_for_answer(
            prompt_tokens=len(prompt_tokens), params=params, context_length=self.info.context_length
        )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()

        def publish(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the consumer's event loop has closed: nobody is listening any more
                cancelled.set()

        def generate() -> None:
            try:
                with self._generation_lock:
                    completion_tokens = 0
                    for chunk in self._llama.create_completion(prompt_tokens, stream=True, **sampling_kwargs(params)):
                        if cancelled.is_set():
                            break
                        choice = chunk["choices"][0]
                        if choice["finish_reason"] is None:
                            completion_tokens += 1
                        if choice["text"]:
                            publish(Delta(text=choice["text"]))
                    publish(Delta(usage=Usage(prompt_tokens=len(prompt_tokens), completion_tokens=completion_tokens)))
            except Exception as error:  # handed to the consumer, which raises it in its own task
                publish(error)
            finally:
                publish(_END_OF_STREAM)

        worker = threading.Thread(target=generate, name="llama-cpp-generate", daemon=True)
        worker.start()
        try:
            while (item := await queue.get()) is not _END_OF_STREAM:
                if isinstance(item, Exception):
                    raise EngineError(f"llama.cpp failed: {item}") from item
                yield item
        finally:
            cancelled.set()

    async def close(self) -> None:
        with self._generation_lock:
            self._llama.close()
