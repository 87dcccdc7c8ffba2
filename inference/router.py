"""An ordered list of models: a request goes to the first that is up and has room, else waits in a bounded queue.

When the primary is overloaded or down, requests go to the next model (9B → 4B → 2B); the route taken travels
with the answer's first delta. When nothing can take a request the caller gets EngineUnavailable at once, never a
hang: queues are bounded in length and in waiting time.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError

from inference.chat_template import ChatMessage
from inference.engine import Engine
from inference.metrics import EngineMetrics
from inference.thinking import ThinkingSplitter, prompt_opens_thinking
from inference.types import (
    Delta,
    EngineError,
    EngineUnavailable,
    GenerationParams,
    RequestRejected,
    Route,
    UnknownModel,
)


@dataclass(frozen=True, kw_only=True)
class RouteLimits:
    max_running: int = 4  # streams an engine generates at once before the next model is preferred
    max_queued: int = 16  # requests allowed to wait for this engine when every model is busy
    queue_timeout_seconds: float = 30.0
    retry_down_after_seconds: float = 30.0  # how long a failed engine is skipped before it is tried again


@dataclass(kw_only=True)
class RoutedModel:
    name: str
    engine: Engine | None  # None while loading, or when loading failed
    limits: RouteLimits = field(default_factory=RouteLimits)
    running: int = 0
    queued: int = 0
    down_reason: str = ""
    down_until: float = 0.0
    _slot_freed: asyncio.Condition | None = None
    _slot_freed_loop: asyncio.AbstractEventLoop | None = None

    def slot_freed(self) -> asyncio.Condition:
        """The condition queued requests wait on, made for the running event loop: asyncio primitives belong to
        one loop, and a router outlives loops (each async_to_sync call, each asyncio.run, runs its own)."""
        loop = asyncio.get_running_loop()
        if self._slot_freed is None or self._slot_freed_loop is not loop:
            self._slot_freed, self._slot_freed_loop = asyncio.Condition(), loop
        return self._slot_freed

    def unavailable_reason(self) -> str:
        if self.engine is None:
            return self.down_reason or "not loaded"
        if self.down_until > time.monotonic():
            return f"down ({self.down_reason})"
        return ""

    def has_room(self) -> bool:
        return self.running < self.limits.max_running

    def can_queue(self) -> bool:
        return self.queued < self.limits.max_queued


class Router:
    def __init__(self, models: list[RoutedModel], *, metrics: EngineMetrics | None = None):
        if not models:
            raise ValueError("a route needs at least one model")
        self.models = models
        self.metrics = metrics or EngineMetrics()
        for routed in models:
            # A queue nobody has used yet is empty, not unknown; an engine handed over loaded says how long it took.
            self.metrics.running.labels(model=routed.name).set(0)
            self.metrics.queued.labels(model=routed.name).set(0)
            if routed.engine is not None:
                self.metrics.load_seconds.labels(model=routed.name).set(getattr(routed.engine, "load_seconds", 0.0))

    def describe(self) -> list[dict[str, Any]]:
        """Each model on the route as OpenAI's model list has it, plus its state, load and the template it uses."""
        described = []
        for routed in self.models:
            model: dict[str, Any] = {
                "id": routed.name,
                "object": "model",
                "owned_by": "kb",
                "state": routed.unavailable_reason() or "ready",
                "running": routed.running,
                "queued": routed.queued,
                "max_running": routed.limits.max_running,
                "max_queued": routed.limits.max_queued,
            }
            if routed.engine is not None:
                engine = routed.engine
                template = engine.chat_template
                model.update(
                    backend=engine.info.backend,
                    max_model_len=engine.info.context_length,
                    load_seconds=round(getattr(engine, "load_seconds", 0.0), 2),
                    chat_template={
                        "source": template.source,
                        "bos_token": template.bos_token,
                        "eos_token": template.eos_token,
                    },
                )
            described.append(model)
        return described

    def model_states(self) -> dict[str, str]:
        return {routed.name: routed.unavailable_reason() or "ready" for routed in self.models}

    def readiness(self) -> dict[str, Any]:
        return {"ready": all(routed.engine is not None for routed in self.models), "models": self.model_states()}

    def metrics_exposition(self) -> str:
        return self.metrics.exposition().decode()

    def count_tokens(self, text: str) -> int:
        """Counted by the first model that is loaded: prompts are budgeted for the route's primary."""
        for routed in self.models:
            if routed.engine is not None:
                return routed.engine.count_tokens(text)
        raise EngineUnavailable("No model is loaded yet.")

    def model_named(self, name: str) -> RoutedModel:
        for model in self.models:
            if model.name == name:
                return model
        raise UnknownModel(f"no model named {name!r} is served here; see /v1/models")

    async def stream_chat(
        self,
        messages: list[ChatMessage],
        params: GenerationParams,
        *,
        enable_thinking: bool = False,
        start_at: str | None = None,
    ) -> AsyncIterator[Delta]:
        """Render with the chosen model's own template, stream its answer with thinking split off."""
        candidates = self.models if start_at is None else self.models[self.models.index(self.model_named(start_at)) :]
        async for delta in self._stream(candidates, params, messages=messages, enable_thinking=enable_thinking):
            yield delta

    async def stream_prompt(self, model_name: str, prompt: str, params: GenerationParams) -> AsyncIterator[Delta]:
        """A prompt already rendered for one model goes to that model only: another's template would not match."""
        async for delta in self._stream([self.model_named(model_name)], params, prompt=prompt):
            yield delta

    async def _stream(
        self,
        candidates: list[RoutedModel],
        params: GenerationParams,
        *,
        prompt: str | None = None,
        messages: list[ChatMessage] | None = None,
        enable_thinking: bool = False,
    ) -> AsyncIterator[Delta]:
        skipped: list[str] = []
        for routed, waited in self._choices(candidates, skipped):
            async with _Slot(self, routed, waited):
                engine = routed.engine
                try:
                    rendered = (
                        prompt
                        if prompt is not None
                        else engine.chat_template.render(messages, enable_thinking=enable_thinking)
                    )
                except (ValueError, TemplateError) as error:  # a malformed conversation, not a failing model
                    raise RequestRejected(
                        f"{routed.name}'s chat template cannot render these messages: {error}"
                    ) from error
                started = time.perf_counter()
                stream = engine.stream(rendered, params)
                try:
                    first = await anext(stream, None)
                except RequestRejected:
                    await stream.aclose()
                    raise
                except EngineError as error:
                    self._mark_down(routed, str(error))
                    skipped.append(f"{routed.name}: failed ({error})")
                    await stream.aclose()
                    continue
                route = Route(model=routed.name, backend=engine.info.backend, skipped=tuple(skipped))
                yield Delta(route=route)
                async for delta in self._measured(
                    routed, stream, first, started, thinking=messages is not None and prompt_opens_thinking(rendered)
                ):
                    yield delta
                return
        self.metrics.requests.labels(model=candidates[0].name, outcome="unavailable").inc()
        raise EngineUnavailable("No model can answer right now: " + "; ".join(skipped) + ".")

    def _choices(self, candidates: list[RoutedModel], skipped: list[str]):
        """The models to try in order: first those with a free slot, then one to wait for in its queue."""
        tried: set[str] = set()
        for routed in candidates:
            reason = routed.unavailable_reason()
            if reason:
                skipped.append(f"{routed.name}: {reason}")
                self.metrics.fallbacks.labels(model=routed.name, reason="down").inc()
                tried.add(routed.name)
            elif routed.has_room():
                tried.add(routed.name)
                yield routed, False
            else:
                skipped.append(f"{routed.name}: overloaded ({routed.running} running, {routed.queued} waiting)")
                self.metrics.fallbacks.labels(model=routed.name, reason="overloaded").inc()
        for routed in candidates:
            if routed.name in tried or routed.unavailable_reason():
                continue
            if routed.can_queue():
                yield routed, True
                return

    def _mark_down(self, routed: RoutedModel, reason: str) -> None:
        routed.down_reason = reason
        routed.down_until = time.monotonic() + routed.limits.retry_down_after_seconds
        self.metrics.errors.labels(model=routed.name).inc()
        self.metrics.requests.labels(model=routed.name, outcome="error").inc()

    async def _measured(
        self, routed: RoutedModel, stream: AsyncIterator[Delta], first: Delta | None, started: float, *, thinking: bool
    ) -> AsyncIterator[Delta]:
        splitter = ThinkingSplitter(thinking=thinking)
        first_text_at: float | None = None
        usage = None
        outcome = "cancelled"
        try:
            delta = first
            while delta is not None:
                if delta.usage is not None:
                    usage = delta.usage
                elif delta.text:
                    if first_text_at is None:
                        first_text_at = time.perf_counter()
                        self.metrics.time_to_first_token.labels(model=routed.name).observe(first_text_at - started)
                    for channel, text in splitter.feed(delta.text):
                        yield Delta(text=text, channel=channel)
                delta = await anext(stream, None)
            for channel, text in splitter.flush():
                yield Delta(text=text, channel=channel)
            if usage is not None:
                yield Delta(usage=usage)
            outcome = "ok"
        except EngineError:
            outcome = "error"
            self.metrics.errors.labels(model=routed.name).inc()
            raise
        finally:
            await stream.aclose()
            self.metrics.requests.labels(model=routed.name, outcome=outcome).inc()
            if usage is not None:
                self.metrics.output_tokens.labels(model=routed.name).inc(usage.completion_tokens)
                self.metrics.prompt_tokens.labels(model=routed.name).inc(usage.prompt_tokens)
                if usage.cached_prompt_tokens:
                    self.metrics.cached_prompt_tokens.labels(model=routed.name).inc(usage.cached_prompt_tokens)
                if first_text_at is not None and usage.completion_tokens > 1:
                    seconds = time.perf_counter() - first_text_at
                    if seconds > 0:
                        self.metrics.output_tokens_per_second.labels(model=routed.name).observe(
                            (usage.completion_tokens - 1) / seconds
                        )


class _Slot:
    """Holds one of a model's running slots for the length of a stream, after waiting in its queue if asked."""

    def __init__(self, router: Router, routed: RoutedModel, waited: bool):
        self.router, self.routed, self.waited = router, routed, waited

    async def __aenter__(self) -> None:
        routed, metrics = self.routed, self.router.metrics
        if self.waited:
            routed.queued += 1
            metrics.queued.labels(model=routed.name).set(routed.queued)
            try:
                slot_freed = routed.slot_freed()
                async with slot_freed:
                    await asyncio.wait_for(slot_freed.wait_for(routed.has_room), routed.limits.queue_timeout_seconds)
            except TimeoutError:
                raise EngineUnavailable(
                    f"Every model is busy; {routed.name} did not free a slot within "
                    f"{routed.limits.queue_timeout_seconds:g} s."
                ) from None
            finally:
                routed.queued -= 1
                metrics.queued.labels(model=routed.name).set(routed.queued)
        routed.running += 1
        metrics.running.labels(model=routed.name).set(routed.running)

    async def __aexit__(self, *exc_info) -> None:
        routed = self.routed
        routed.running -= 1
        self.router.metrics.running.labels(model=routed.name).set(routed.running)
        slot_freed = routed.slot_freed()
        async with slot_freed:
            slot_freed.notify()
