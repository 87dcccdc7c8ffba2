"""The llama.cpp engine, for real, on SmolLM2-135M-Instruct from its wheel."""

import asyncio

import pytest

from inference.config import smollm2_wheel_path
from inference.factory import build_engine
from inference.llama_cpp import LlamaCppConfig
from inference.types import EngineError, GenerationParams

GREEDY = GenerationParams(temperature=0.0, top_p=1.0, top_k=1, max_tokens=24, seed=1)


@pytest.fixture(scope="module")
def engine():
    engine = build_engine(LlamaCppConfig(model_path=smollm2_wheel_path(), n_ctx=512, n_threads=2))
    yield engine
    asyncio.run(engine.close())


def _collect(engine, prompt, params):
    async def run():
        return [delta async for delta in engine.stream(prompt, params)]

    return asyncio.run(run())


def _prompt(engine, question):
    return engine.chat_template.render([{"role": "user", "content": question}])


def test_prompt_is_rendered_with_the_models_own_template(engine):
    prompt = _prompt(engine, "Name the capital city of Germany.")

    assert prompt.startswith("<|im_start|>system\n")  # SmolLM2's template adds its default system turn
    assert prompt.endswith("<|im_start|>user\nName the capital city of Germany.<|im_end|>\n<|im_start|>assistant\n")


def test_stream_yields_text_then_usage_and_greedy_decoding_is_repeatable(engine):
    prompt = _prompt(engine, "Name the capital city of Germany.")

    first = _collect(engine, prompt, GREEDY)
    second = _collect(engine, prompt, GREEDY)

    text = "".join(delta.text for delta in first[:-1])
    assert "Berlin" in text
    assert first[-1].usage is not None and first[-1].text == ""
    assert first[-1].usage.prompt_tokens == engine.count_tokens(prompt)
    assert 0 < first[-1].usage.completion_tokens <= GREEDY.max_tokens
    assert text == "".join(delta.text for delta in second[:-1])


def test_closing_the_stream_early_frees_the_engine_for_the_next_request(engine):
    prompt = _prompt(engine, "Write a long story about a lighthouse keeper.")

    async def read_two_then_leave():
        stream = engine.stream(prompt, GenerationParams(max_tokens=200, seed=1))
        received = [await anext(stream), await anext(stream)]
        await stream.aclose()
        return received

    assert len(asyncio.run(read_two_then_leave())) == 2
    follow_up = _collect(engine, _prompt(engine, "Say hello."), GREEDY)
    assert follow_up[-1].usage.completion_tokens > 0


def test_prompts_longer_than_the_context_are_refused_before_generating(engine):
    too_long = _prompt(engine, "word " * 600)
    with pytest.raises(EngineError, match="exceeds the context length of 512"):
        _collect(engine, too_long, GREEDY)
