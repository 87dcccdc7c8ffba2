"""LmdeployEngine's own logic without a GPU: the pipeline is replaced by a stand-in whose engine runs on its own
event loop in a thread, as LMDeploy's does, and streams LMDeploy's real GenOut objects; sessions live in LMDeploy's
real SessionManager. This pins the hand-over between that loop and the caller's, cancellation and stop strings.
test_gpu_generation.py runs the real engine."""

import asyncio
import threading
from types import SimpleNamespace

import lmdeploy
import pytest
from lmdeploy import GenerationConfig
from lmdeploy.serve.core.async_engine import GenOut
from lmdeploy.serve.core.exceptions import ErrorCode, RequestError
from lmdeploy.serve.managers import SessionManager

from inference.lmdeploy import LmdeployConfig, LmdeployEngine
from inference.types import Delta, EngineError, GenerationParams, RequestRejected, Usage

MESSAGES = [{"role": "user", "content": "What does the FAQ say about the GIL?"}]


class LoopThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class StandInAsyncEngine:
    backend = "pytorch"

    def __init__(self, loop, session_len, pieces, fail_with):
        self.session_mgr = SessionManager()
        self.session_mgr.attach_event_loop(loop)
        self.session_len = session_len
        self.pieces = pieces
        self.fail_with = fail_with
        self.prepared: list[dict] = []
        self.loops: set[asyncio.AbstractEventLoop] = set()
        self.yielded = 0
        self.cancelled = 0

    async def preprocess(self, messages, session_id, gen_config=None, do_preprocess=True, input_ids=None, **kwargs):
        self.loops.add(asyncio.get_running_loop())
        self.prepared.append(
            {"messages": messages, "input_ids": input_ids, "gen_config": gen_config, "do_preprocess": do_preprocess}
        )
        if isinstance(self.fail_with, RequestError) and self.fail_with.code is ErrorCode.CONTEXT_LENGTH_EXCEEDED:
            self.session_mgr.remove(session_id)
            raise self.fail_with
        return SimpleNamespace(session=session_id, input_ids=input_ids)

    async def generate(self, request, stream_response=True):
        self.loops.add(asyncio.get_running_loop())
        try:
            if self.fail_with is not None:
                raise self.fail_with
            for index, piece in enumerate(self.pieces):
                await asyncio.sleep(0.001)
                self.yielded += 1
                yield GenOut(response=piece, input_token_len=len(request.input_ids), generate_token_len=index + 1)
            yield GenOut(
                response="",
                input_token_len=len(request.input_ids),
                generate_token_len=len(self.pieces),
                finish_reason="length",
            )
        except asyncio.CancelledError:  # LMDeploy's safe_run cancels the session here
            self.cancelled += 1
            raise
        finally:
            self.session_mgr.remove(request.session)


class StandInPipeline:
    def __init__(self, model_path, *, backend_config, log_level, pieces, fail_with):
        self.backend_config = backend_config
        self.thread = LoopThread()
        self.async_engine = StandInAsyncEngine(self.thread.loop, backend_config.session_len, pieces, fail_with)
        self.closed = False

    def close(self):
        self.closed = True
        self.thread.close()


@pytest.fixture
def start_engine(monkeypatch, tiny_qwen3):
    pipelines = []

    def start(pieces=("The", " GIL", " is", " a lock."), fail_with=None):
        def pipeline(model_path, **kwargs):
            pipelines.append(StandInPipeline(model_path, pieces=list(pieces), fail_with=fail_with, **kwargs))
            return pipelines[-1]

        monkeypatch.setattr(lmdeploy, "pipeline", pipeline)
        engine = LmdeployEngine(LmdeployConfig(model_path=str(tiny_qwen3), backend="pytorch", session_len=2048))
        return engine, pipelines[-1]

    yield start
    for pipeline in pipelines:
        if not pipeline.closed:
            pipeline.close()


async def _collect(stream) -> list[Delta]:
    return [delta async for delta in stream]


def test_engine_describes_the_model_from_its_folder_and_lmdeploy(start_engine):
    engine, pipeline = start_engine()

    assert engine.info.model == "tiny-qwen3"
    assert engine.info.backend == "lmdeploy"
    assert engine.info.context_length == 2048  # the engine's session length
    assert engine.info.details["lmdeploy_backend"] == "pytorch"
    assert engine.load_seconds >= 0
    assert pipeline.backend_config.session_len == 2048  # our backend config reached the pipeline
    assert engine.chat_template.render(MESSAGES).startswith("<|im_start|>user\nWhat does the FAQ say")


def test_stream_runs_lmdeploys_async_api_on_the_engines_own_loop(start_engine):
    engine, pipeline = start_engine()
    prompt = engine.chat_template.render(MESSAGES)

    asyncio.run(_collect(engine.stream(prompt, GenerationParams(max_tokens=50, temperature=0.0))))

    (prepared,) = pipeline.async_engine.prepared
    assert prepared["messages"] is None  # the prompt goes as token ids: LMDeploy applies no template
    assert prepared["do_preprocess"] is False
    assert engine._tokenizer.decode(prepared["input_ids"]) == prompt
    assert isinstance(prepared["gen_config"], GenerationConfig)
    assert (prepared["gen_config"].max_new_tokens, prepared["gen_config"].do_sample) == (50, False)
    assert pipeline.async_engine.loops == {pipeline.thread.loop}


def test_stream_yields_each_new_piece_then_usage_last(start_engine):
    engine, pipeline = start_engine()
    prompt = engine.chat_template.render(MESSAGES)

    deltas = asyncio.run(_collect(engine.stream(prompt, GenerationParams(max_tokens=50))))

    assert [delta.text for delta in deltas[:-1]] == ["The", " GIL", " is", " a lock."]
    assert deltas[-1] == Delta(usage=Usage(prompt_tokens=engine.count_tokens(prompt), completion_tokens=4))
    assert pipeline.async_engine.cancelled == 0
    assert pipeline.async_engine.session_mgr.sessions == {}


def test_closing_the_stream_early_stops_the_session(start_engine):
    engine, pipeline = start_engine(pieces=[f" word{index}" for index in range(1000)])

    async def read_two_then_leave():
        stream = engine.stream(engine.chat_template.render(MESSAGES), GenerationParams(max_tokens=1000))
        first = [await anext(stream), await anext(stream)]
        await stream.aclose()
        return first

    first = asyncio.run(read_two_then_leave())

    assert [delta.text for delta in first] == [" word0", " word1"]
    assert pipeline.async_engine.cancelled == 1
    assert pipeline.async_engine.session_mgr.sessions == {}  # freed before aclose() returned
    assert pipeline.async_engine.yielded < 1000


def test_a_stop_string_ends_the_answer_before_it_and_stops_the_session(start_engine):
    engine, pipeline = start_engine(pieces=["Hello", " wor", "ld\n\nQues", "tion: what", *[" more"] * 500])

    deltas = asyncio.run(_collect(engine.stream("Hi", GenerationParams(max_tokens=600, stop=("\n\nQuestion:",)))))

    assert "".join(delta.text for delta in deltas) == "Hello world"
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens >= 4
    assert pipeline.async_engine.cancelled == 1
    assert pipeline.async_engine.session_mgr.sessions == {}


def test_out_of_range_sampling_rejects_the_request(start_engine):
    engine, pipeline = start_engine()

    with pytest.raises(RequestRejected, match="temperature must be within"):
        asyncio.run(_collect(engine.stream("Hello", GenerationParams(temperature=3.0, max_tokens=10))))
    assert pipeline.async_engine.prepared == []


def test_a_request_lmdeploy_refuses_is_rejected(start_engine):
    engine, _ = start_engine(fail_with=RequestError(ErrorCode.CONTEXT_LENGTH_EXCEEDED, "Input length (9) too long"))

    with pytest.raises(RequestRejected, match="LMDeploy refused the request: Input length"):
        asyncio.run(_collect(engine.stream("Hello", GenerationParams(max_tokens=10))))


def test_an_engine_failure_is_an_engine_error(start_engine):
    engine, pipeline = start_engine(fail_with=RuntimeError("CUDA error: an illegal memory access"))

    with pytest.raises(EngineError, match="LMDeploy failed: CUDA error"):
        asyncio.run(_collect(engine.stream("Hello", GenerationParams(max_tokens=10))))
    assert pipeline.async_engine.session_mgr.sessions == {}


def test_prompt_longer_than_the_context_is_rejected_before_lmdeploy(start_engine):
    engine, pipeline = start_engine()

    with pytest.raises(RequestRejected, match="exceeds the context length of 2048"):
        asyncio.run(_collect(engine.stream("word " * 2100, GenerationParams(max_tokens=10))))
    assert pipeline.async_engine.prepared == []


def test_streams_from_two_loops_share_one_engine(start_engine):
    engine, _ = start_engine()
    prompt = engine.chat_template.render(MESSAGES)

    first = asyncio.run(_collect(engine.stream(prompt, GenerationParams(max_tokens=50))))
    second = asyncio.run(_collect(engine.stream(prompt, GenerationParams(max_tokens=50))))

    assert first == second


def test_close_closes_the_pipeline(start_engine):
    engine, pipeline = start_engine()

    asyncio.run(engine.close())

    assert pipeline.closed


def test_turbomind_that_cannot_run_here_fails_at_start_instead_of_falling_back(tiny_qwen3):
    from lmdeploy import turbomind

    if turbomind.is_available():
        pytest.skip("TurboMind's native module loads on this machine")
    with pytest.raises(EngineError, match="TurboMind engine is not available here"):
        LmdeployEngine(LmdeployConfig(model_path=str(tiny_qwen3), backend="turbomind"))
