"""VllmEngine's own logic without a GPU: AsyncLLM is replaced by a stand-in that streams vLLM's real RequestOutput
objects the way AsyncLLM does with DELTA output, and records aborts. Everything else is real: our engine arguments,
the model folder's tokenizer and template, vLLM's SamplingParams. test_gpu_generation.py runs the real engine."""

import asyncio
from types import SimpleNamespace

import pytest
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM

from inference.types import Delta, EngineError, GenerationParams, RequestRejected, Usage
from inference.vllm import VllmConfig, VllmEngine

MESSAGES = [{"role": "user", "content": "What does the FAQ say about the GIL?"}]


class StandInAsyncLLM:
    def __init__(self, args, pieces: list[str], *, fail_with: Exception | None = None):
        self.args = args
        self.model_config = SimpleNamespace(max_model_len=args.max_model_len)
        self.pieces = pieces
        self.fail_with = fail_with
        self.requests: list[tuple[dict, object, str]] = []
        self.aborted: list[str] = []
        self.closed_generators = 0
        self.shut_down = False
        self.errored = False

    async def generate(self, prompt, sampling_params, request_id):
        self.requests.append((prompt, sampling_params, request_id))
        try:
            if self.fail_with is not None:
                raise self.fail_with
            for index, piece in enumerate(self.pieces):
                await asyncio.sleep(0)
                last = index == len(self.pieces) - 1
                completion = CompletionOutput(
                    index=0,
                    text=piece,
                    token_ids=[100 + index],
                    cumulative_logprob=None,
                    logprobs=None,
                    finish_reason="length" if last else None,
                )
                yield RequestOutput(
                    request_id=request_id,
                    prompt=None,
                    prompt_token_ids=prompt["prompt_token_ids"],
                    prompt_logprobs=None,
                    outputs=[completion],
                    finished=last,
                )
        finally:
            self.closed_generators += 1

    async def abort(self, request_id, internal=False):
        self.aborted.append(request_id)

    def shutdown(self):
        self.shut_down = True


@pytest.fixture
def start_engine(monkeypatch, tiny_qwen3):
    def start(pieces=("The", " GIL", "", " is", " a lock."), **stand_in):
        started = []

        def from_engine_args(args):
            started.append(StandInAsyncLLM(args, list(pieces), **stand_in))
            return started[0]

        monkeypatch.setattr(AsyncLLM, "from_engine_args", from_engine_args)
        engine = VllmEngine(VllmConfig(model_path=str(tiny_qwen3), max_model_len=2048))
        return engine, started[0]

    return start


async def _collect(stream) -> list[Delta]:
    return [delta async for delta in stream]


def test_engine_describes_the_model_from_its_folder_and_vllm(start_engine):
    engine, vllm = start_engine()

    assert engine.info.model == "tiny-qwen3"
    assert engine.info.backend == "vllm"
    assert engine.info.context_length == 2048  # what vLLM's model config says
    assert engine.load_seconds >= 0
    assert vllm.args.max_model_len == 2048  # our engine arguments reached AsyncLLM
    assert engine.chat_template.render(MESSAGES).startswith("<|im_start|>user\nWhat does the FAQ say")


def test_stream_gives_vllm_the_prompts_token_ids_and_delta_sampling(start_engine):
    engine, vllm = start_engine()
    prompt = engine.chat_template.render(MESSAGES)

    asyncio.run(_collect(engine.stream(prompt, GenerationParams(max_tokens=50, seed=3))))

    ((sent_prompt, params, _),) = vllm.requests
    assert len(sent_prompt["prompt_token_ids"]) == engine.count_tokens(prompt)
    assert engine._tokenizer.decode(sent_prompt["prompt_token_ids"]) == prompt
    assert params.output_kind is RequestOutputKind.DELTA
    assert (params.max_tokens, params.seed) == (50, 3)


def test_stream_yields_each_new_piece_then_usage_last(start_engine):
    engine, vllm = start_engine()
    prompt = engine.chat_template.render(MESSAGES)

    deltas = asyncio.run(_collect(engine.stream(prompt, GenerationParams(max_tokens=50))))

    assert [delta.text for delta in deltas[:-1]] == ["The", " GIL", " is", " a lock."]
    assert all(delta.usage is None for delta in deltas[:-1])
    assert deltas[-1] == Delta(usage=Usage(prompt_tokens=engine.count_tokens(prompt), completion_tokens=5))
    assert vllm.aborted == []  # a finished request needs no abort


def test_closing_the_stream_early_aborts_the_request(start_engine):
    engine, vllm = start_engine(pieces=[f" word{index}" for index in range(100)])

    async def read_two_then_leave():
        stream = engine.stream(engine.chat_template.render(MESSAGES), GenerationParams(max_tokens=100))
        first = [await anext(stream), await anext(stream)]
        await stream.aclose()
        return first

    first = asyncio.run(read_two_then_leave())

    assert [delta.text for delta in first] == [" word0", " word1"]
    ((_, _, request_id),) = vllm.requests
    assert vllm.aborted == [request_id]
    assert vllm.closed_generators == 1


def test_prompt_longer_than_the_context_is_rejected_before_vllm(start_engine):
    engine, vllm = start_engine()
    prompt = "word " * 2100

    with pytest.raises(RequestRejected, match="exceeds the context length of 2048"):
        asyncio.run(_collect(engine.stream(prompt, GenerationParams(max_tokens=10))))
    assert vllm.requests == []


def test_prompt_plus_answer_longer_than_the_context_is_rejected(start_engine):
    engine, _ = start_engine()
    prompt = engine.chat_template.render(MESSAGES)

    with pytest.raises(RequestRejected, match="answer tokens exceeds"):
        asyncio.run(_collect(engine.stream(prompt, GenerationParams(max_tokens=2048))))


def test_sampling_parameters_vllm_refuses_reject_the_request(start_engine):
    engine, vllm = start_engine()

    with pytest.raises(RequestRejected, match="vLLM refused the sampling parameters"):
        asyncio.run(_collect(engine.stream("Hello", GenerationParams(top_p=1.5, max_tokens=10))))
    assert vllm.requests == []


def test_a_request_vllm_refuses_is_rejected(start_engine):
    engine, _ = start_engine(fail_with=ValueError("The decoder prompt cannot be empty"))

    with pytest.raises(RequestRejected, match="vLLM refused the request: The decoder prompt cannot be empty"):
        asyncio.run(_collect(engine.stream("", GenerationParams(max_tokens=10))))


def test_a_dead_engine_is_an_engine_error(start_engine):
    from vllm.v1.engine.exceptions import EngineDeadError

    engine, vllm = start_engine(fail_with=EngineDeadError())
    vllm.errored = True

    with pytest.raises(EngineError, match="vLLM failed"):
        asyncio.run(_collect(engine.stream("Hello", GenerationParams(max_tokens=10))))
    assert vllm.aborted == []  # nothing to abort on a dead engine


def test_close_shuts_vllm_down(start_engine):
    engine, vllm = start_engine()

    asyncio.run(engine.close())

    assert vllm.shut_down


def test_a_folder_without_a_model_fails_before_vllm_starts(tmp_path):
    with pytest.raises(EngineError, match="config.json not found"):
        VllmEngine(VllmConfig(model_path=str(tmp_path)))
