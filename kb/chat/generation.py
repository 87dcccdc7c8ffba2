"""Where answers come from: the serving process when KB_INFERENCE_URL is set, else an engine in this process.

The single-process development mode hosts llama.cpp here behind the same Router a serving process uses, so the
route, limits and metrics behave the same in both modes.
"""

import asyncio
import atexit
import functools
import logging

from django.conf import settings

from inference.client import InferenceClient
from inference.config import smollm2_wheel_path
from inference.engine import ChatBackend
from inference.factory import build_engine
from inference.llama_cpp import LlamaCppConfig
from inference.router import RoutedModel, RouteLimits, Router
from inference.types import GenerationParams

logger = logging.getLogger(__name__)


@functools.cache
def answer_backend() -> ChatBackend:
    if settings.KB_INFERENCE_URL:
        return InferenceClient(settings.KB_INFERENCE_URL)
    engine = build_engine(
        LlamaCppConfig(
            model_path=settings.KB_LLM_MODEL_PATH or smollm2_wheel_path(),
            n_ctx=settings.KB_LLM_CONTEXT_LENGTH,
            n_threads=settings.KB_LLM_THREADS,
        )
    )
    logger.info("loaded %s on %s in this process", engine.info.model, engine.info.backend)
    # Freed before interpreter shutdown; llama-cpp-python's own finaliser fails once its modules are torn down.
    atexit.register(lambda: asyncio.run(engine.close()))
    return Router(
        [
            RoutedModel(
                name=engine.info.model,
                engine=engine,
                limits=RouteLimits(max_running=1, max_queued=settings.KB_INFERENCE_MAX_QUEUED),
            )
        ]
    )


def answer_generation_params() -> GenerationParams:
    return GenerationParams(
        temperature=settings.KB_LLM_TEMPERATURE,
        top_p=settings.KB_LLM_TOP_P,
        top_k=settings.KB_LLM_TOP_K,
        max_tokens=settings.KB_LLM_MAX_TOKENS,
        repetition_penalty=settings.KB_LLM_REPETITION_PENALTY,
        seed=settings.KB_LLM_SEED,
    )
