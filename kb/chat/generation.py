"""Where answers come from: the serving process when KB_INFERENCE_URL is set, else an engine in this process.

The single-process development mode hosts llama.cpp here behind the same Router a serving process uses, so the
route, limits and metrics behave the same in both modes.
"""

import asyncio
import atexit
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from inference.client import InferenceClient
from inference.config import smollm2_wheel_path
from inference.engine import ChatBackend
from inference.factory import build_engine
from inference.llama_cpp import LlamaCppConfig
from inference.registry import PRESETS, ModelPreset
from inference.router import RoutedModel, RouteLimits, Router
from inference.types import EngineUnavailable, GenerationParams, UnknownModel
from kb.platform.serving import serving_api_key

logger = logging.getLogger(__name__)
# The CPU default's preset, which names the in-process engine when it runs the wheel's model.
_WHEEL_PRESET = "smollm2-135m"
# Qwen3.5 from 0.8B on rewrites a follow-up into a standalone question reliably; SmolLM2-135M does not.
_REWRITES_FROM_BILLION_PARAMETERS = 0.8


def _served_client() -> InferenceClient:
    return InferenceClient(settings.KB_INFERENCE_URL, api_key=serving_api_key())


@functools.cache
def answer_backend() -> ChatBackend:
    if settings.KB_INFERENCE_URL:
        return _served_client()
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
                name=engine.info.model if settings.KB_LLM_MODEL_PATH else _WHEEL_PRESET,
                engine=engine,
                limits=RouteLimits(
                    max_running=1,
                    max_queued=settings.KB_INFERENCE_MAX_QUEUED,
                    queue_timeout_seconds=settings.KB_INFERENCE_QUEUE_TIMEOUT,
                ),
            )
        ]
    )


@contextlib.asynccontextmanager
async def answer_backend_of_this_loop() -> AsyncIterator[ChatBackend]:
    """For code that runs event loops of its own, one after another (an evaluation run in a worker): the serving
    process's client keeps its connections in the loop that first streamed with it, and fails in any later loop, so
    such code gets a client of its own, closed with the loop. The in-process engine is shared, as it is elsewhere."""
    if not settings.KB_INFERENCE_URL:
        yield answer_backend()
        return
    client = _served_client()
    try:
        yield client
    finally:
        await client.close()


@dataclass(frozen=True, kw_only=True)
class AnsweringModel:
    """The route's first ready model, which answers unless it is busy, and what the route as a whole allows."""

    name: str
    preset: ModelPreset | None
    context_length: int  # the smallest of the ready models': a fallback may answer
    must_wait: bool  # no ready model has a free slot: the question waits in a queue
    can_take_question: bool  # some ready model has a free slot or room in its queue

    @property
    def thinks(self) -> bool:
        return self.preset is not None and self.preset.thinking

    @property
    def rewrites_questions(self) -> bool:
        if settings.KB_QUESTION_REWRITE in {"model", "join"}:
            return settings.KB_QUESTION_REWRITE == "model"
        return self.preset is not None and self.preset.parameters_billion >= _REWRITES_FROM_BILLION_PARAMETERS

    def generation_params(self, *, max_tokens: int | None = None) -> GenerationParams:
        """Its preset's recommended sampling, unless an administrator set KB_LLM_* overrides; `max_tokens` shortens
        the answer (an API caller's cap, an evaluation run's), never lengthens it."""
        params = settings.KB_LLM.sampling_for(self.preset.recommended if self.preset else GenerationParams())
        if max_tokens is None:
            return params
        return dataclasses.replace(params, max_tokens=min(params.max_tokens, max_tokens))


def answering_model(backend: ChatBackend | None = None, *, model_name: str | None = None) -> AnsweringModel:
    """Read from the route's own description (the serving process's /v1/models), which may block: call it off the
    event loop. With `model_name`, the route from that model on (a later one answers when it is busy); a name the
    route does not have raises UnknownModel."""
    described = (backend or answer_backend()).describe()
    if model_name is not None:
        names = [model["id"] for model in described]
        if model_name not in names:
            raise UnknownModel(f"No model named {model_name!r} answers here; see /v1/models.")
        described = described[names.index(model_name) :]
    ready = [model for model in described if model.get("state") == "ready" and model.get("max_model_len")]
    if not ready:
        states = "; ".join(f"{model['id']}: {model.get('state', 'unknown')}" for model in described)
        raise EngineUnavailable(f"No model is ready to answer ({states}).")
    first = ready[0]
    return AnsweringModel(
        name=first["id"],
        preset=PRESETS.get(first["id"]),
        context_length=min(model["max_model_len"] for model in ready),
        must_wait=not any(_has_free_slot(model) for model in ready),
        can_take_question=any(_has_free_slot(model) or model["queued"] < model["max_queued"] for model in ready),
    )


def _has_free_slot(model: dict[str, Any]) -> bool:
    return model["running"] < model["max_running"]
