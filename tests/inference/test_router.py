"""The router with real llama.cpp engines: fallback when the primary is busy or down, bounded queues, metrics."""

import asyncio

import pytest

from inference.config import smollm2_wheel_path
from inference.factory import build_engine
from inference.llama_cpp import LlamaCppConfig
from inference.router import RoutedModel, RouteLimits, Router
from inference.types import EngineUnavailable, GenerationParams, RequestRejected

QUESTION = [{"role": "user", "content": "Name the capital city of Germany."}]
SHORT = GenerationParams(temperature=0.0, top_k=1, max_tokens=8, seed=1)
LONG = GenerationParams(temperature=0.0, top_k=1, max_tokens=400, seed=1)


@pytest.fixture(scope="module")
def engines():
    built = [build_engine(LlamaCppConfig(model_path=smollm2_wheel_path(), n_ctx=1024, n_threads=1)) for _ in range(2)]
    yield built
    for engine in built:
        asyncio.run(engine.close())


def _router(engines, *, queued=0, queue_timeout=30.0):
    limits = RouteLimits(max_running=1, max_queued=queued, queue_timeout_seconds=queue_timeout)
    return Router(
        [
            RoutedModel(name="big", engine=engines[0], limits=limits),
            RoutedModel(name="small", engine=engines[1], limits=limits),
        ]
    )


async def _collect(router, params=SHORT):
    return [delta async for delta in router.stream_chat(QUESTION, params)]


async def _hold_first_slot(router):
    """Start a long answer on the primary and keep it running: the primary is now at its limit."""
    stream = router.stream_chat(QUESTION, LONG)
    first = await anext(stream)
    await anext(stream)
    return stream, first


def test_the_primary_answers_and_the_route_comes_first_and_usage_last(engines):
    deltas = asyncio.run(_collect(_router(engines)))

    assert deltas[0].route.model == "big" and deltas[0].route.skipped == ()
    assert "Berlin" in "".join(d.text for d in deltas)
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens > 0


def test_an_overloaded_primary_sends_the_next_request_to_the_fallback(engines):
    router = _router(engines)

    async def scenario():
        held, first = await _hold_first_slot(router)
        second = await _collect(router)
        await held.aclose()
        return first, second

    first, second = asyncio.run(scenario())

    assert first.route.model == "big"
    assert second[0].route.model == "small"
    assert second[0].route.skipped == ("big: overloaded (1 running, 0 waiting)",)
    assert "Berlin" in "".join(d.text for d in second)
    exposition = router.metrics.exposition().decode()
    assert 'kb_inference_fallbacks_total{model="big",reason="overloaded"} 1.0' in exposition


def test_when_every_model_is_busy_and_queues_are_full_the_caller_is_told_at_once(engines):
    router = _router(engines, queued=0)

    async def scenario():
        held = [await _hold_first_slot(router), await _hold_first_slot(router)]
        try:
            with pytest.raises(EngineUnavailable, match="No model can answer right now") as refused:
                await _collect(router)
        finally:
            for stream, _ in held:
                await stream.aclose()
        return refused.value

    error = asyncio.run(asyncio.wait_for(scenario(), timeout=60))

    assert "big: overloaded" in str(error) and "small: overloaded" in str(error)


def test_a_queued_request_waits_for_a_slot_and_then_runs(engines):
    router = _router(engines, queued=1)

    async def scenario():
        held = [await _hold_first_slot(router), await _hold_first_slot(router)]
        waiting = asyncio.create_task(_collect(router))
        await asyncio.sleep(0.5)
        queued_while_busy = router.models[0].queued
        await held[0][0].aclose()  # the primary frees its slot: the queued request takes it
        answer = await asyncio.wait_for(waiting, timeout=60)
        await held[1][0].aclose()
        return queued_while_busy, answer

    queued_while_busy, answer = asyncio.run(scenario())

    assert queued_while_busy == 1
    assert answer[0].route.model == "big"
    assert "Berlin" in "".join(d.text for d in answer)


def test_a_queue_that_does_not_move_gives_up_with_a_clear_message(engines):
    router = _router(engines, queued=1, queue_timeout=0.5)

    async def scenario():
        held = [await _hold_first_slot(router), await _hold_first_slot(router)]
        try:
            with pytest.raises(EngineUnavailable, match="did not free a slot within 0.5 s"):
                await _collect(router)
        finally:
            for stream, _ in held:
                await stream.aclose()

    asyncio.run(scenario())


def test_a_model_that_failed_to_load_is_skipped_with_its_reason(engines):
    router = Router(
        [
            RoutedModel(name="big", engine=None, down_reason="failed to load: model file not found"),
            RoutedModel(name="small", engine=engines[1]),
        ]
    )

    deltas = asyncio.run(_collect(router))

    assert deltas[0].route.model == "small"
    assert deltas[0].route.skipped == ("big: failed to load: model file not found",)


def test_with_nothing_loaded_the_error_names_each_reason(engines):
    router = Router([RoutedModel(name="big", engine=None, down_reason="loading")])

    with pytest.raises(EngineUnavailable, match="big: loading"):
        asyncio.run(_collect(router))


def test_a_router_serves_one_event_loop_after_another(engines):
    """Each async_to_sync call or asyncio.run has its own loop; queued waiting must work in each of them."""
    router = _router(engines, queued=1)

    async def queued_behind_a_busy_pair():
        held = [await _hold_first_slot(router), await _hold_first_slot(router)]
        waiting = asyncio.create_task(_collect(router))
        await asyncio.sleep(0.2)
        await held[0][0].aclose()
        answer = await asyncio.wait_for(waiting, timeout=60)
        await held[1][0].aclose()
        return answer

    for _ in range(2):
        assert "Berlin" in "".join(d.text for d in asyncio.run(queued_behind_a_busy_pair()))


def test_messages_the_chat_template_cannot_render_are_the_requests_fault_not_the_models(engines):
    router = _router(engines)

    with pytest.raises(RequestRejected, match="chat template cannot render"):
        asyncio.run(anext(router.stream_chat([{"role": "user"}], SHORT)))

    assert router.models[0].unavailable_reason() == ""  # not marked down
