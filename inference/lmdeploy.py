"""LMDeploy in-process (pipeline): W4A16 and low VRAM.

LMDeploy is imported inside functions only: the CPU install has no LMDeploy. `backend_config` and
`generation_config` are the only places where our settings become LMDeploy's; engines/tests builds their results
against the real package. LMDeploy checks few values itself (some with `assert`, which `python -O` removes, and
TurboMind takes any `model_format`), so the mapping functions refuse bad settings with ValueError.

The pipeline runs its engine on an event loop of its own, in a thread: LMDeploy binds its engine to one loop for
the engine's lifetime. `stream` runs LMDeploy's async API (`AsyncEngine.preprocess` and `.generate`) on that loop
and passes the deltas to the caller's loop, so any loop (the server's, a test's) can consume them.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from inference.hf_tokenizer import hf_tokenizer_and_template
from inference.types import (
    Delta,
    EngineError,
    EngineInfo,
    GenerationParams,
    RequestRejected,
    Usage,
    require_room_for_answer,
)

if TYPE_CHECKING:
    from lmdeploy import GenerationConfig, PytorchEngineConfig, TurbomindEngineConfig

BACKENDS = ("turbomind", "pytorch")
# TurboMind's weight layouts (lmdeploy/turbomind/converter.py). The PyTorch engine reads AWQ/GPTQ from the
# weights' config.json; its model_format only asks it to quantize plain weights to fp8 while loading.
TURBOMIND_MODEL_FORMATS = ("hf", "awq", "gptq", "compressed-tensors", "fp8", "mxfp4")
PYTORCH_MODEL_FORMATS = ("fp8",)


@dataclass(frozen=True, kw_only=True)
class LmdeployConfig:
    model_path: str
    backend: Literal["turbomind", "pytorch"] = "turbomind"
    tp: int = 1
    session_len: int | None = None
    cache_max_entry_count: float = 0.8
    model_format: str | None = None  # "awq" for W4A16 weights made with `lmdeploy lite auto_awq`
    # RAG prompts share long prefixes (system prompt, the same passages for follow-up questions).
    enable_prefix_caching: bool = True
    # Qwen3.5 checkpoints are multimodal: text_only loads the language model alone (no vision encoder).
    text_only: bool = True


def backend_config(config: LmdeployConfig) -> "TurbomindEngineConfig | PytorchEngineConfig":
    from lmdeploy import PytorchEngineConfig, TurbomindEngineConfig

    if not config.model_path:
        raise ValueError("LMDeploy: model_path is empty")
    if config.backend not in BACKENDS:
        raise ValueError(f"LMDeploy: backend must be one of {', '.join(BACKENDS)}, not {config.backend!r}")
    if config.tp < 1:
        raise ValueError(f"LMDeploy: tp (tensor parallel GPUs) must be at least 1, not {config.tp}")
    if config.session_len is not None and config.session_len < 1:
        raise ValueError(f"LMDeploy: session_len must be positive, not {config.session_len}")
    if not 0 < config.cache_max_entry_count < 1:
        raise ValueError(
            "LMDeploy: cache_max_entry_count is the fraction of free GPU memory kept for the KV cache, in (0, 1); "
            f"got {config.cache_max_entry_count}"
        )
    if config.backend == "turbomind":
        if config.model_format is not None and config.model_format not in TURBOMIND_MODEL_FORMATS:
            raise ValueError(
                f"LMDeploy: model_format for TurboMind must be one of "
                f"{', '.join(TURBOMIND_MODEL_FORMATS)}, not {config.model_format!r}"
            )
    elif config.model_format is not None and config.model_format not in PYTORCH_MODEL_FORMATS:
        raise ValueError(
            f"LMDeploy: the PyTorch backend reads the quantization of AWQ/GPTQ weights from their config.json; "
            f"leave model_format empty for them (it can only be {', '.join(PYTORCH_MODEL_FORMATS)}), "
            f"not {config.model_format!r}"
        )
    engine_config = TurbomindEngineConfig if config.backend == "turbomind" else PytorchEngineConfig
    return engine_config(
        tp=config.tp,
        session_len=config.session_len,
        cache_max_entry_count=config.cache_max_entry_count,
        model_format=config.model_format,
        enable_prefix_caching=config.enable_prefix_caching,
        language_model_only=config.text_only,
    )


def generation_config(params: GenerationParams) -> "GenerationConfig":
    """Our neutral parameters as LMDeploy's. Stop strings are not passed: LMDeploy 0.18 turns stop words into single
    token ids (a word of several tokens is dropped with a warning; a token that merely contains the word is cut
    whole), so `LmdeployEngine.stream` cuts the text at them itself, as vLLM and llama.cpp do."""
    from lmdeploy import GenerationConfig

    if not 0 <= params.temperature <= 2:
        raise ValueError(f"LMDeploy: temperature must be within [0, 2], not {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise ValueError(f"LMDeploy: top_p must be within (0, 1], not {params.top_p}")
    if params.max_tokens < 1:
        raise ValueError(f"LMDeploy: max_tokens must be at least 1, not {params.max_tokens}")
    if params.repetition_penalty <= 0:
        raise ValueError(f"LMDeploy: repetition_penalty must be positive, not {params.repetition_penalty}")
    return GenerationConfig(
        do_sample=params.temperature > 0,  # LMDeploy decodes greedily unless asked to sample
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=max(params.top_k, 0),  # 0: no top-k limit, like vLLM's -1 and llama.cpp's 0
        max_new_tokens=params.max_tokens,
        repetition_penalty=params.repetition_penalty,
        random_seed=params.seed,
    )


class StopStrings:
    """Cuts streamed text before the first stop string, holding back a tail that may be the start of one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if not self._stops:
            return text
        self._held += text
        found = [index for stop in self._stops if (index := self._held.find(stop)) >= 0]
        if found:
            self.stopped = True
            text, self._held = self._held[: min(found)], ""
            return text
        keep = max((n for stop in self._stops for n in range(1, len(stop)) if self._held.endswith(stop[:n])), default=0)
        text, self._held = self._held[: len(self._held) - keep], self._held[len(self._held) - keep :]
        return text

    def flush(self) -> str:
        text, self._held = self._held, ""
        return text


_END_OF_STREAM = object()


@dataclass
class _Request:
    """One stream's state, written on the engine's loop."""

    publish: Callable[[object], None]
    task: asyncio.Task | None = None
    cancelled: bool = False
    completion_tokens: int = 0


class LmdeployEngine:
    def __init__(self, config: LmdeployConfig) -> None:
        from lmdeploy import pipeline

        model_dir = Path(config.model_path)
        if not (model_dir / "config.json").is_file():
            raise EngineError(f"no model at {config.model_path}: config.json not found")
        engine_config = backend_config(config)  # a bad setting fails here, before anything loads
        if config.backend == "turbomind":
            _require_turbomind(config.model_path)
        self._tokenizer, self.chat_template = hf_tokenizer_and_template(config.model_path)
        started = time.perf_counter()
        try:
            self._pipeline = pipeline(config.model_path, backend_config=engine_config, log_level="WARNING")
        except Exception as error:
            raise EngineError(f"LMDeploy could not start {model_dir.name}: {error}") from error
        self.load_seconds = time.perf_counter() - started
        self._engine = self._pipeline.async_engine
        self._loop: asyncio.AbstractEventLoop = self._engine.session_mgr.loop  # the loop the engine is bound to
        self.info = EngineInfo(
            model=model_dir.name,
            backend="lmdeploy",
            context_length=self._engine.session_len,
            details={
                "model_path": config.model_path,
                "lmdeploy_backend": self._engine.backend,
                "model_format": config.model_format or "hf",
            },
        )

    def _tokenize(self, text: str) -> list[int]:
        # The chat template already wrote any BOS the model wants.
        return self._tokenizer.encode(text, add_special_tokens=False)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    async def stream(self, prompt: str, params: GenerationParams) -> AsyncIterator[Delta]:
        prompt_tokens = self._tokenize(prompt)
        require_room_for_answer(
            prompt_tokens=len(prompt_tokens), params=params, context_length=self.info.context_length
        )
        try:
            gen_config = generation_config(params)
        except ValueError as error:  # a bad request, not a bad engine
            raise RequestRejected(str(error)) from error
        stops = StopStrings(params.stop)
        consumer_loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def publish(item: object) -> None:
            try:
                consumer_loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the consumer's loop has closed: nobody is listening any more
                pass

        request = _Request(publish=publish)
        asyncio.run_coroutine_threadsafe(self._generate(request, prompt_tokens, gen_config), self._loop)
        finished = False
        try:
            while (item := await queue.get()) is not _END_OF_STREAM:
                if isinstance(item, Exception):
                    raise item
                assert isinstance(item, str)
                if text := stops.feed(item):
                    yield Delta(text=text)
                if stops.stopped:
                    break
            else:
                finished = True
                if tail := stops.flush():
                    yield Delta(text=tail)
        finally:
            if not finished:  # a stop string, or the consumer went away: stop the session, wait until it is freed
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._cancel(request), self._loop))
        yield Delta(usage=Usage(prompt_tokens=len(prompt_tokens), completion_tokens=request.completion_tokens))

    async def _generate(self, request: _Request, prompt_tokens: list[int], gen_config: Any) -> None:
        """Runs on the engine's loop: LMDeploy's async API, with the prompt as token ids (no template applied)."""
        from lmdeploy.serve.core.exceptions import ErrorCode, RequestError

        request.task = asyncio.current_task()
        try:
            if request.cancelled:
                return
            session = self._engine.session_mgr.get()
            prepared = await self._engine.preprocess(
                messages=None, input_ids=prompt_tokens, session_id=session, gen_config=gen_config, do_preprocess=False
            )
            async for output in self._engine.generate(prepared, stream_response=True):
                request.completion_tokens = output.generate_token_len
                if output.response:
                    request.publish(output.response)
        except RequestError as error:
            message = error.message or error.code.name
            if error.code in (ErrorCode.CONTEXT_LENGTH_EXCEEDED, ErrorCode.INVALID_REQUEST):
                request.publish(RequestRejected(f"LMDeploy refused the request: {message}"))
            else:
                request.publish(EngineError(f"LMDeploy failed: {message}"))
        except Exception as error:  # handed to the consumer, which raises it in its own task
            request.publish(EngineError(f"LMDeploy failed: {error}"))
        finally:
            request.publish(_END_OF_STREAM)

    async def _cancel(self, request: _Request) -> None:
        """Runs on the engine's loop. Cancelling the task makes LMDeploy's generate cancel the session
        (AsyncEngine.safe_run) and return its instance to the pool before the task ends."""
        request.cancelled = True
        task = request.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def close(self) -> None:
        self._pipeline.close()


def _require_turbomind(model_path: str) -> None:
    """LMDeploy falls back to its PyTorch engine, with a log line, when TurboMind cannot run; a deployment that
    asked for TurboMind (AWQ weights, its speed) should fail at start instead."""
    from lmdeploy import turbomind

    if not turbomind.is_available():
        raise EngineError(
            f"LMDeploy's TurboMind engine is not available here ({turbomind._import_error}); it needs the CUDA 12 "
            "runtime libraries. Set the backend to 'pytorch' to use LMDeploy's PyTorch engine."
        )
    from lmdeploy.turbomind.supported_models import is_supported

    if not is_supported(model_path):
        raise EngineError(
            f"LMDeploy's TurboMind engine does not support the model at {model_path}; set the backend to 'pytorch'."
        )
