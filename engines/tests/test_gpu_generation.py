"""Real generation through OUR VllmEngine and LmdeployEngine on a small random-weight Qwen3 (engines/tiny_models.py).
Needs a CUDA GPU, with vLLM and LMDeploy installed for it (shared/gpu/*-wheels prepare them); skipped elsewhere.

vLLM first, then LMDeploy: each class's engine is closed when its last test is done, so the two never hold the GPU
at once. Each class runs its coroutines on one event loop, as the server does (AsyncLLM binds its output handler
to the loop of its first request)."""

import asyncio
import time

import pytest
import torch

from inference.types import Delta, GenerationParams, RequestRejected

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

MESSAGES = [{"role": "system", "content": "Answer from the passages."},
            {"role": "user", "content": "What does the FAQ say about the global interpreter lock?"}]
CONTEXT = 2048


async def _collect(stream) -> list[Delta]:
    return [delta async for delta in stream]


class EngineBehaviour:
    """What every GPU engine must do; subclasses provide the `engine` and `loop` fixtures."""

    def run(self, loop, coroutine):
        return loop.run_until_complete(asyncio.wait_for(coroutine, timeout=120))

    def test_engine_loaded_and_describes_itself(self, engine):
        assert engine.info.model == "tiny-qwen3"
        assert engine.info.context_length == CONTEXT
        assert engine.load_seconds > 0

    def test_text_streams_in_deltas_and_usage_comes_last(self, engine, loop):
        prompt = engine.chat_template.render(MESSAGES)

        deltas = self.run(loop, _collect(engine.stream(prompt, GenerationParams(max_tokens=48, seed=1))))

        *pieces, last = deltas
        assert len(pieces) >= 2  # streamed, not one piece at the end
        assert all(piece.text and piece.usage is None for piece in pieces)
        assert last.text == "" and last.usage is not None
        assert last.usage.prompt_tokens == engine.count_tokens(prompt)
        assert 1 <= last.usage.completion_tokens <= 48

    def test_greedy_decoding_repeats_itself(self, engine, loop):
        prompt = engine.chat_template.render(MESSAGES)
        params = GenerationParams(max_tokens=24, temperature=0.0)

        first = self.run(loop, _collect(engine.stream(prompt, params)))
        second = self.run(loop, _collect(engine.stream(prompt, params)))

        assert "".join(d.text for d in first) == "".join(d.text for d in second) != ""

    def test_concurrent_streams_all_finish(self, engine, loop):
        prompts = [engine.chat_template.render([{"role": "user", "content": f"Question {n}?"}]) for n in range(8)]

        async def all_streams():
            return await asyncio.gather(*(_collect(engine.stream(p, GenerationParams(max_tokens=32)))
                                          for p in prompts))

        results = self.run(loop, all_streams())

        assert all(result[-1].usage is not None and result[-1].usage.completion_tokens >= 1 for result in results)

    def test_closing_the_stream_early_frees_the_request(self, engine, loop):
        prompt = engine.chat_template.render(MESSAGES)

        async def read_three_then_leave():
            stream = engine.stream(prompt, GenerationParams(max_tokens=1500, temperature=1.0))
            for _ in range(3):
                await anext(stream)
            await stream.aclose()

        started = time.perf_counter()
        self.run(loop, read_three_then_leave())
        self.run(loop, asyncio.sleep(0.5))

        assert self.requests_in_flight(engine) == 0
        assert time.perf_counter() - started < 60

    def test_prompt_longer_than_the_context_is_rejected(self, engine, loop):
        prompt = "word " * (CONTEXT + 10)

        with pytest.raises(RequestRejected):
            self.run(loop, _collect(engine.stream(prompt, GenerationParams(max_tokens=8))))


class TestVllm(EngineBehaviour):
    @pytest.fixture(scope="class")
    def loop(self):
        loop = asyncio.new_event_loop()
        yield loop
        loop.close()

    @pytest.fixture(scope="class")
    def engine(self, tiny_qwen3, loop):
        from inference.vllm import VllmConfig, VllmEngine

        engine = VllmEngine(VllmConfig(model_path=str(tiny_qwen3), max_model_len=CONTEXT,
                                       gpu_memory_utilization=0.3, enforce_eager=True))
        yield engine
        loop.run_until_complete(engine.close())

    def requests_in_flight(self, engine) -> int:
        return engine._engine.output_processor.get_num_unfinished_requests()


class TestLmdeploy(EngineBehaviour):
    @pytest.fixture(scope="class")
    def loop(self):
        loop = asyncio.new_event_loop()
        yield loop
        loop.close()

    @pytest.fixture(scope="class")
    def engine(self, tiny_qwen3, loop):
        from inference.lmdeploy import LmdeployConfig, LmdeployEngine

        engine = LmdeployEngine(LmdeployConfig(model_path=str(tiny_qwen3), backend="pytorch", session_len=CONTEXT,
                                               cache_max_entry_count=0.3))
        yield engine
        loop.run_until_complete(engine.close())

    def requests_in_flight(self, engine) -> int:
        async_engine = engine._engine
        return len(async_engine.session_mgr.sessions) + async_engine.session_mgr.request_handle_pool.num_dispatched
