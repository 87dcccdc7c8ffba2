"""The serving process for real: `python -m inference` with SmolLM2 on llama.cpp, called over HTTP."""

import asyncio
import json
import signal
import stat
import time
import urllib.error
import urllib.request

import pytest

from inference.client import InferenceClient
from inference.config import API_KEY_FILE, smollm2_wheel_path
from inference.factory import build_engine
from inference.llama_cpp import LlamaCppConfig
from inference.remote import RemoteConfig, RemoteEngine
from inference.types import EngineUnavailable, GenerationParams
from tests.inference.serving import Server, get_json, post

QUESTION = [{"role": "user", "content": "Name the capital city of Germany."}]
GREEDY = GenerationParams(temperature=0.0, top_p=1.0, top_k=1, max_tokens=16, seed=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inference")
    running = Server(
        folder,
        KB_INFERENCE_MAX_QUEUED="0",
        KB_VAR_DIR=str(folder / "var"),  # no key given: it makes its own there
        KB_INFERENCE_ALLOWED_HOSTS="kb-models.internal",
    )
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
    status, ready = server.get("/ready")
    _, models = server.get("/v1/models")

    assert status == 200 and ready == {"ready": True, "models": {"smollm2-135m": "ready"}}
    [model] = models["data"]
    assert model["id"] == "smollm2-135m" and model["backend"] == "llama_cpp" and model["max_model_len"] == 1024
    assert model["load_seconds"] > 0 and "<|im_start|>" in model["chat_template"]["source"]


def test_the_client_streams_the_route_then_text_then_usage(server):
    deltas = _chat(server.client())

    assert deltas[0].route.model == "smollm2-135m" and deltas[0].route.backend == "llama_cpp"
    assert "Berlin" in "".join(d.text for d in deltas)
    assert deltas[-1].usage.completion_tokens > 0 and deltas[-1].usage.prompt_tokens > 10


def test_the_remote_backend_against_our_server_matches_the_engine_in_this_process(server):
    local = build_engine(LlamaCppConfig(model_path=smollm2_wheel_path(), n_ctx=1024, n_threads=1))
    remote = RemoteEngine(RemoteConfig(base_url=f"{server.url}/v1", model="smollm2-135m", api_key=server.api_key))
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
        busy, other = server.client(), server.client()
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
    body = json.dumps({"messages": QUESTION, "max_tokens": 4}).encode()
    with server.post("/v1/chat/completions", body) as response:  # the slot is free again
        assert json.loads(response.read())["choices"][0]["message"]["content"]
    assert waited < 5


def test_metrics_count_requests_tokens_and_first_token_times(server):
    _chat(server.client())

    request = urllib.request.Request(f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.api_key}"})
    with urllib.request.urlopen(request, timeout=5) as response:
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
            _chat(broken.client())
    finally:
        broken.stop()


def test_sigterm_lets_a_running_answer_finish_then_exits_cleanly(tmp_path):
    running = Server(tmp_path)
    running.wait_until(ready=True)
    client = running.client()

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


HI = b'{"messages": [{"role": "user", "content": "Hi"}]}'


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
        ("/tokenize", b'{"prompt": ["a"]}', 400, "one string"),
        ("/v1/chat/completions", b"[" * 100_000, 400, "must be JSON"),  # deeper than the parser's stack
        ("/v1/chat/completions", HI[:-1] + b', "max_tokens": 1e400}', 400, "invalid request"),
        ("/v1/chat/completions", HI[:-1] + b', "chat_template_kwargs": "x"}', 400, "must be an object"),
        # Met inside the engine's thread these read as the model failing, which took it out of the route.
        ("/v1/chat/completions", HI[:-1] + b', "stop": [1]}', 400, "stop must be texts"),
        ("/v1/chat/completions", HI[:-1] + b', "seed": "x"}', 400, "seed must be a whole number"),
        ("/v1/chat/completions", HI[:-1] + b', "seed": 1099511627776}', 400, "seed must be a whole number"),
    ],
)
def test_bad_requests_get_a_status_and_a_reason_and_the_server_keeps_serving(server, path, body, status, reason):
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.post(path, body, timeout=30)
    assert refused.value.code == status
    assert reason in json.loads(refused.value.read())["error"]["message"]
    assert server.get("/ready")[0] == 200
    with server.post("/v1/chat/completions", HI[:-1] + b', "max_tokens": 2}', timeout=60) as answered:
        assert json.loads(answered.read())["choices"]  # the model is still in the route


def test_a_route_naming_an_unknown_model_stops_the_server_with_the_reason(tmp_path):
    broken = Server(tmp_path, KB_INFERENCE_ROUTE="qwen9000=vllm")

    assert broken.process.wait(timeout=30) == 1
    assert "cannot start with these settings: unknown model 'qwen9000'" in broken.log.read_text()


# Only the web and worker processes may call it: the key they share, a JSON body, a host name it is known by.
GUARDED = [
    ("GET", "/ready", None),
    ("GET", "/v1/models", None),
    ("GET", "/metrics", None),
    ("POST", "/tokenize", {"prompt": "hello"}),
    ("POST", "/v1/completions", {"prompt": "Hi", "model": "smollm2-135m", "max_tokens": 1}),
    ("POST", "/v1/chat/completions", {"messages": QUESTION, "max_tokens": 1}),
]


def _call(server, method: str, path: str, payload, *, headers: dict[str, str]) -> tuple[int, bytes]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _json_headers(api_key: str = "") -> dict[str, str]:
    return {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}


@pytest.mark.parametrize(("method", "path", "payload"), GUARDED)
def test_every_route_but_liveness_refuses_a_caller_without_the_key(server, method, path, payload):
    refused = [
        _call(server, method, path, payload, headers=headers)
        for headers in (
            _json_headers(),
            _json_headers("not-the-key"),
            _json_headers(server.api_key + "x"),
            {**_json_headers(), "Authorization": server.api_key},  # no scheme
            {**_json_headers(), "Authorization": f"Basic {server.api_key}"},
        )
    ]

    for status, body in refused:
        assert status == 401 and json.loads(body)["error"]["type"] == "unauthorized"
    assert _call(server, method, path, payload, headers=_json_headers(server.api_key))[0] == 200


def test_liveness_answers_without_the_key_and_says_nothing_more(server):
    assert get_json(f"{server.url}/health") == (200, {"status": "alive"})


def test_the_key_the_server_made_is_its_owners_only_and_is_the_one_it_requires(server):
    key_file = server.var_dir / API_KEY_FILE

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(server.api_key) >= 40
    assert [path.name for path in server.var_dir.iterdir()] == [API_KEY_FILE]  # no partial file left behind
    assert server.get("/v1/models")[0] == 200


# What a web page may send without a CORS preflight.
NO_PREFLIGHT = ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data"]


@pytest.mark.parametrize("content_type", NO_PREFLIGHT)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/tokenize"])
def test_a_post_whose_body_is_not_declared_json_is_refused_even_with_the_key(server, path, content_type):
    body = json.dumps({"messages": QUESTION, "prompt": "Hi", "max_tokens": 1}).encode()

    with pytest.raises(urllib.error.HTTPError) as refused:
        post(f"{server.url}{path}", body, api_key=server.api_key, content_type=content_type)

    assert refused.value.code == 415 and "application/json" in json.loads(refused.value.read())["error"]["message"]


def test_json_with_a_charset_is_json(server):
    with server.post("/tokenize", b'{"prompt": "hello"}', content_type="application/json; charset=utf-8") as answer:
        assert json.loads(answer.read())["count"] > 0


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example", "[::2]:{port}", ""])
@pytest.mark.parametrize(("method", "path", "payload"), [*GUARDED, ("GET", "/health", None)])
def test_a_host_name_the_server_is_not_known_by_is_refused_even_with_the_key(server, host, method, path, payload):
    """DNS rebinding: a page whose name was re-pointed at 127.0.0.1 still sends its own name as the Host."""
    headers = {**_json_headers(server.api_key), "Host": host.format(port=server.port)}

    status, body = _call(server, method, path, payload, headers=headers)

    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_host"


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1", "[::1]:{port}", "LOCALHOST", "kb-models.internal"])
def test_localhost_by_any_of_its_names_and_a_configured_name_are_answered(server, host):
    headers = {**_json_headers(server.api_key), "Host": host.format(port=server.port)}

    assert _call(server, "GET", "/v1/models", None, headers=headers)[0] == 200


def test_the_client_with_another_key_is_told_why_it_is_refused(server):
    client = InferenceClient(server.url, api_key="a-key-of-another-var-dir")

    with pytest.raises(EngineUnavailable, match="refused this process's API key"):
        client.count_tokens("hello")
    with pytest.raises(EngineUnavailable, match="refused this process's API key"):
        client.describe()
    with pytest.raises(EngineUnavailable, match="refused this process's API key"):
        _chat(client)
