"""The serving process for real: `python -m inference` with SmolLM2 on llama.cpp, called over HTTP."""

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request

import pytest

from inference.client import InferenceClient
from inference.config import smollm2_wheel_path
from inference.factory import build_engine
from inference.llama_cpp import LlamaCppConfig
from inference.remote import RemoteConfig, RemoteEngine
from inference.types import EngineUnavailable, GenerationParams
from tests.inference.serving import Server
from tests.inference.serving import get_json as _get

QUESTION = [{"role": "user", "content": "Name the capital city of Germany."}]
GREEDY = GenerationParams(temperature=0.0, top_p=1.0, top_k=1, max_tokens=16, seed=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("inference"), KB_INFERENCE_MAX_QUEUED="0")
    running.wait_until(ready=True)
    yield running
    running.stop()


def _chat(client: InferenceClient, params=GREEDY):
    async def run():
        deltas = [delta async for delta in client.stream_chat(QUESTION, params)]
        await client.close()
        return deltas

    return asyncio.run(run())


def test_readiness_and_the_model_list_say_what_is_loaded(server):
    status, ready = _get(f"{server.url}/ready")
    _, models = _get(f"{server.url}/v1/models")

    assert status == 200 and ready == {"ready": True, "models": {"smollm2-135m": "ready"}}
    [model] = models["data"]
    assert model["id"] == "smollm2-135m" and model["backend"] == "llama_cpp" and model["max_model_len"] == 1024
    assert model["load_seconds"] > 0 and "<|im_start|>" in model["chat_template"]["source"]


def test_the_client_streams_the_route_then_text_then_usage(server):
    deltas = _chat(InferenceClient(server.url))

    assert deltas[0].route.model == "smollm2-135m" and deltas[0].route.backend == "llama_cpp"
    assert "Berlin" in "".join(d.text for d in deltas)
    assert deltas[-1].usage.completion_tokens > 0 and deltas[-1].usage.prompt_tokens > 10


def test_the_remote_backend_against_our_server_matches_the_engine_in_this_process(server):
    local = build_engine(LlamaCppConfig(model_path=smollm2_wheel_path(), n_ctx=1024, n_threads=1))
    remote = RemoteEngine(RemoteConfig(base_url=f"{server.url}/v1", model="smollm2-135m"))
    prompt = local.chat_template.render(QUESTION)

    async def answers():
        texts = []
        for engine in (remote, local):
            texts.append("".join([delta.text async for delta in engine.stream(prompt, GREEDY)]))
            await engine.close()
        return texts

    assert remote.chat_template.render(QUESTION) == prompt
    assert remote.count_tokens(prompt) == local.count_tokens(prompt)
    assert remote.info.context_length == 1024
    remote_text, local_text = asyncio.run(answers())
    assert "Berlin" in remote_text and remote_text == local_text


def test_a_full_queue_answers_503_with_retry_after_and_the_reason_not_a_hang(server):
    async def scenario():
        busy, other = InferenceClient(server.url), InferenceClient(server.url)
        stream = busy.stream_chat(QUESTION, GenerationParams(max_tokens=300, seed=1))
        await anext(stream)
        await anext(stream)
        try:
            started = time.monotonic()
            with pytest.raises(EngineUnavailable, match="smollm2-135m: overloaded") as refused:
                await anext(other.stream_chat(QUESTION, GREEDY))
            return time.monotonic() - started, refused.value
        finally:
            await stream.aclose()
            await busy.close()
            await other.close()

    waited, _ = asyncio.run(scenario())
    request = urllib.request.Request(
        f"{server.url}/v1/chat/completions",
        method="POST",
        data=json.dumps({"messages": QUESTION, "max_tokens": 4}).encode(),
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # the slot is free again
        assert json.loads(response.read())["choices"][0]["message"]["content"]
    assert waited < 5


def test_metrics_count_requests_tokens_and_first_token_times(server):
    _chat(InferenceClient(server.url))

    with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
        exposition = response.read().decode()

    assert 'kb_inference_requests_total{model="smollm2-135m",outcome="ok"}' in exposition
    assert 'kb_inference_time_to_first_token_seconds_count{model="smollm2-135m"}' in exposition
    assert 'kb_inference_output_tokens_total{model="smollm2-135m"}' in exposition
    assert 'kb_inference_model_load_seconds{model="smollm2-135m"}' in exposition
    assert 'kb_inference_running_requests{model="smollm2-135m"} 0.0' in exposition


def test_a_model_that_cannot_load_keeps_the_server_unready_and_requests_get_the_reason(tmp_path):
    broken = Server(tmp_path, KB_LLM_MODEL_PATH=str(tmp_path / "missing.gguf"))
    try:
        ready = broken.wait_until(ready=False)
        assert "failed to load" in ready["models"]["smollm2-135m"]
        with pytest.raises(EngineUnavailable, match="model file not found"):
            _chat(InferenceClient(broken.url))
    finally:
        broken.stop()


def test_sigterm_lets_a_running_answer_finish_then_exits_cleanly(tmp_path):
    running = Server(tmp_path)
    running.wait_until(ready=True)
    client = InferenceClient(running.url)

    async def answer_across_shutdown():
        stream = client.stream_chat(QUESTION, GenerationParams(max_tokens=60, temperature=0.0, top_k=1))
        deltas = [await anext(stream), await anext(stream)]
        running.process.send_signal(signal.SIGTERM)
        deltas += [delta async for delta in stream]
        await client.close()
        return deltas

    deltas = asyncio.run(answer_across_shutdown())

    assert deltas[-1].usage is not None  # the stream ran to its end
    running.assert_shut_down_cleanly()


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/v1/chat/completions", b"not json", 400, "must be JSON"),
        ("/v1/chat/completions", b"[1, 2]", 400, "a JSON object"),
        ("/v1/chat/completions", b'{"messages": []}', 400, "non-empty list"),
        (
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "Hi"}], "temperature": "hot"}',
            400,
            "invalid request",
        ),
        (
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "Hi"}], "model": "gpt-9"}',
            404,
            "no model named 'gpt-9'",
        ),
        ("/v1/completions", b'{"prompt": ["a", "b"], "model": "smollm2-135m"}', 400, "one string"),
        ("/tokenize", b'{"prompt": "hello", "model": "gpt-9"}', 404, "no model named"),
    ],
)
def test_bad_requests_get_a_status_and_a_reason_and_the_server_keeps_serving(server, path, body, status, reason):
    request = urllib.request.Request(f"{server.url}{path}", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == status
    assert reason in json.loads(refused.value.read())["error"]["message"]
    assert _get(f"{server.url}/ready")[0] == 200


def test_a_route_naming_an_unknown_model_stops_the_server_with_the_reason(tmp_path):
    broken = Server(tmp_path, KB_INFERENCE_ROUTE="qwen9000=vllm")

    assert broken.process.wait(timeout=30) == 1
    assert "cannot start with these settings: unknown model 'qwen9000'" in broken.log.read_text()
