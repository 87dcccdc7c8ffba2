"""Time to first token and generation speed of the default CPU answer path, with the app's own prompt.

Passages come from Debian's python3.11-doc FAQ, chunked and ranked by the app's own code (no database needed),
then packed under each passage budget by the app's packer (the hits only: no whole documents or neighbours here).
The app itself now sizes the budget from the model (kb/chat/context.py); bench/conversation_latency.py measures that
whole path.

    .venv/bin/python bench/answer_latency.py [--budget 450 900 1500] [--questions 8]
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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
os.environ.setdefault("DATABASE_URL", "postgres://unused@/unused")  # nothing here touches the database

from bench.django_setup import django_setup

django_setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402

from embedding.encoders import chunking_tokenizer, encode  # noqa: E402
from extract.chunking import chunk_document  # noqa: E402
from extract.parsing import parse_document  # noqa: E402
from inference.config import smollm2_wheel_path  # noqa: E402
from inference.factory import build_engine  # noqa: E402
from inference.llama_cpp import LlamaCppConfig  # noqa: E402
from inference.registry import PRESETS  # noqa: E402
from kb.chat.context import answer_messages, passages_packed  # noqa: E402
from kb.search.selectors import PassageHit  # noqa: E402

FAQ = Path("/usr/share/doc/python3.11/html/faq")


def faq_passages() -> tuple[list[PassageHit], np.ndarray]:
    hits = []
    for page in ("general.html", "design.html", "programming.html"):
        parsed = parse_document(data=(FAQ / page).read_bytes(), filename=page)
        for draft in chunk_document(
            document=parsed,
            tokenizer=chunking_tokenizer(settings.KB_EMBEDDING_MODEL_PATH),
            max_tokens=settings.KB_CHUNK_TOKENS,
            overlap_tokens=settings.KB_CHUNK_OVERLAP_TOKENS,
        ):
            hits.append(
                PassageHit(
                    chunk_id=len(hits),
                    document_id=0,
                    version_id=0,
                    document_title=parsed.title,
                    collection_name="FAQ",
                    heading=draft.heading,
                    text=draft.text,
                    score=0.0,
                )
            )
    vectors = encode(settings.KB_EMBEDDING_MODEL_PATH, [f"{hit.heading}\n{hit.text}" for hit in hits])
    return hits, vectors


def questions(limit: int) -> list[str]:
    parsed = parse_document(data=(FAQ / "design.html").read_bytes(), filename="design.html")
    return [s.heading for s in parsed.sections if s.heading.endswith("?")][:limit]


async def measure(engine, prompt: str) -> tuple[float, float, int]:
    started = time.perf_counter()
    first = None
    usage = None
    async for delta in engine.stream(prompt, settings.KB_LLM.sampling_for(PRESETS["smollm2-135m"].recommended)):
        if delta.usage is not None:
            usage = delta.usage
        elif first is None:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    decode_rate = (usage.completion_tokens - 1) / (total - first) if usage.completion_tokens > 1 else float("nan")
    return first, decode_rate, usage.prompt_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, nargs="+", default=[450, 1000])
    parser.add_argument("--questions", type=int, default=8)
    arguments = parser.parse_args()

    print(f"machine: {platform.node()} {os.cpu_count()} CPUs; threads {settings.KB_LLM_THREADS}", flush=True)
    print("embedding the FAQ passages ...", flush=True)
    hits, vectors = faq_passages()
    engine = build_engine(
        LlamaCppConfig(
            model_path=settings.KB_LLM_MODEL_PATH or smollm2_wheel_path(),
            n_ctx=settings.KB_LLM_CONTEXT_LENGTH,
            n_threads=settings.KB_LLM_THREADS,
        )
    )
    print(f"engine: {engine.info.model} on {engine.info.backend}, n_ctx {engine.info.context_length}")
    asks = questions(arguments.questions)
    for budget in arguments.budget:
        firsts, rates, prompt_sizes = [], [], []
        for number, question in enumerate(asks, start=1):
            question_vector = encode(settings.KB_EMBEDDING_MODEL_PATH, [question])[0]
            order = np.argsort(-(vectors @ question_vector))[: settings.KB_RETRIEVAL_TOP_K]
            passages = passages_packed(
                hits=[hits[i] for i in order],
                document_passages={},
                whole_document_ids=(),
                count_tokens=engine.count_tokens,
                budget_tokens=budget,
            ).passages
            prompt = engine.chat_template.render(answer_messages(question=question, turns=[], passages=passages))
            first, rate, prompt_tokens = asyncio.run(measure(engine, prompt))
            firsts.append(first)
            rates.append(rate)
            prompt_sizes.append(prompt_tokens)
            print(
                f"  budget {budget}: question {number}/{len(asks)}: prompt {prompt_tokens} tokens, "
                f"first token {first:.2f} s, {rate:.1f} tokens/s",
                flush=True,
            )
        print(
            f"budget {budget} passage tokens: prompt median {statistics.median(prompt_sizes):.0f} tokens; "
            f"first token median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s; "
            f"generation median {statistics.median(rates):.1f} tokens/s"
        )


if __name__ == "__main__":
    main()
