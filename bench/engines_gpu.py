"""vLLM, LMDeploy and Hugging Face transformers on the same model and GPU: engine start, time to first token and
output tokens/s at several prompt lengths and numbers of concurrent streams. Prints a Markdown table.

vLLM and LMDeploy run through the project's own engines (inference.vllm.VllmEngine, inference.lmdeploy.LmdeployEngine);
transformers has no engine in the project, so this script drives `generate` itself, one batch for all the streams
(static batching: every stream starts together and the batch runs until the longest answer ends). Each backend runs
in a process of its own, so none inherits another's GPU memory.

Without --model, a random-weight Qwen3.5 is built from its config by transformers (engines/tiny_models.py: about
0.65B parameters, hidden 1024, 24 layers of which 6 full attention, a locally trained 16K-token vocabulary) in
var/bench-models/, once.
Prompts are distinct slices of Python's standard library source, so no prompt shares a prefix with another.

Needs a CUDA GPU, with vLLM 0.25.1 and LMDeploy 0.18.0 installed for it (shared/gpu/*-wheels prepare them):

    python bench/engines_gpu.py                                   # the full sweep: 1K/4K/16K × 1/8/32 streams
    python bench/engines_gpu.py --prompt-tokens 1024 --concurrency 1 8 --backends vllm transformers
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKENDS = ("vllm", "lmdeploy", "transformers")
DEFAULT_MODEL_DIR = ROOT / "var" / "bench-models" / "qwen3.5-random"
DEVICE = "cuda"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Needs a CUDA GPU; it stops with a message where there is none.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a model folder (config.json, weights, tokenizer with a chat template); default: a "
        f"random-weight Qwen3.5 built once in {DEFAULT_MODEL_DIR.relative_to(ROOT)}",
    )
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--prompt-tokens", nargs="+", type=int, default=[1024, 4096, 16384])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=128, help="answer tokens per stream (default 128)")
    parser.add_argument(
        "--gpu-memory-fraction",
        type=float,
        default=0.85,
        help="vLLM's gpu_memory_utilization; LMDeploy's cache_max_entry_count (default 0.85)",
    )
    parser.add_argument("--enforce-eager", action="store_true", help="vLLM without CUDA graphs (starts faster)")
    parser.add_argument("--lmdeploy-backend", choices=("pytorch", "turbomind"), default="pytorch")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds each backend may take (default 1800)")
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def require_gpu() -> str:
    try:
        import torch
    except ImportError:
        sys.exit("bench/engines_gpu.py needs torch with CUDA and a GPU; torch is not installed here.")
    if not torch.cuda.is_available():
        sys.exit(
            f"bench/engines_gpu.py needs a CUDA GPU; torch {torch.__version__} sees none "
            f"(CUDA build: {torch.version.cuda or 'no, a CPU build'}). Run it on the GPU machine."
        )
    return torch.cuda.get_device_name(0)


# --- prompts -------------------------------------------------------------------------------------------------------


class PromptSource:
    """Distinct prompts of an exact token length, cut from Python's standard library source."""

    def __init__(self, tokenizer, needed_tokens: int):
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.offset = 0
        for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
            self.tokens += tokenizer.encode(
                path.read_text(encoding="utf-8", errors="replace"), add_special_tokens=False
            )
            if len(self.tokens) > needed_tokens:
                break

    def take(self, count: int) -> str:
        """The text of the next `count` tokens; re-encoding it gives `count` tokens give or take a few."""
        if self.offset + count > len(self.tokens):
            self.offset = 0  # wrapped: a prompt may then repeat an earlier one
        ids = self.tokens[self.offset : self.offset + count]
        self.offset += count
        return self.tokenizer.decode(ids)


# --- workers: one backend each, in its own process -----------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(args.model), local_files_only=True)
    prompts = PromptSource(tokenizer, 256 + sum(args.prompt_tokens) * sum(args.concurrency))
    context = max(args.prompt_tokens) + args.max_tokens + 256
    measure = {"vllm": measure_engine, "lmdeploy": measure_engine, "transformers": measure_transformers}[args.worker]
    rows = measure(args, prompts, context)
    args.result.write_text(json.dumps(rows))


def start_engine(args: argparse.Namespace, context: int):
    if args.worker == "vllm":
        from inference.vllm import VllmConfig, VllmEngine

        return VllmEngine(
            VllmConfig(
                model_path=str(args.model),
                max_model_len=context,
                gpu_memory_utilization=args.gpu_memory_fraction,
                enforce_eager=args.enforce_eager,
            )
        )
    from inference.lmdeploy import LmdeployConfig, LmdeployEngine

    return LmdeployEngine(
        LmdeployConfig(
            model_path=str(args.model),
            backend=args.lmdeploy_backend,
            session_len=context,
            cache_max_entry_count=min(args.gpu_memory_fraction, 0.95),
        )
    )


def measure_engine(args: argparse.Namespace, prompts: PromptSource, context: int) -> list[dict]:
    from inference.types import GenerationParams

    engine = start_engine(args, context)
    rows = [{"kind": "load", "seconds": engine.load_seconds}]
    params = GenerationParams(max_tokens=args.max_tokens, temperature=1.0, top_p=0.95, top_k=40)

    async def one_stream(prompt: str) -> tuple[float | None, int]:
        started = time.perf_counter()
        first = None
        completion = 0
        async for delta in engine.stream(prompt, params):
            if delta.text and first is None:
                first = time.perf_counter() - started
            if delta.usage is not None:
                completion = delta.usage.completion_tokens
        return first, completion

    async def sweep() -> None:
        await one_stream(prompts.take(256))  # warm-up: lazy allocations and kernel compilation
        for prompt_tokens in args.prompt_tokens:
            for concurrency in args.concurrency:
                batch = [prompts.take(prompt_tokens) for _ in range(concurrency)]
                started = time.perf_counter()
                results = await asyncio.gather(*(one_stream(prompt) for prompt in batch))
                wall = time.perf_counter() - started
                rows.append(
                    _row(
                        prompt_tokens,
                        concurrency,
                        [r[0] for r in results if r[0] is not None],
                        sum(r[1] for r in results),
                        wall,
                    )
                )
                print(f"  {args.worker}: {prompt_tokens} tokens × {concurrency} streams done", file=sys.stderr)
        await engine.close()

    asyncio.run(sweep())
    return rows


def measure_transformers(args: argparse.Namespace, prompts: PromptSource, context: int) -> list[dict]:
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

    started = time.perf_counter()
    architecture = AutoConfig.from_pretrained(str(args.model), local_files_only=True).architectures[0]
    # .to() rather than device_map, which needs accelerate.
    model = (
        getattr(transformers, architecture)
        .from_pretrained(str(args.model), dtype=torch.bfloat16, local_files_only=True)
        .to(DEVICE)
    )
    model.eval()
    torch.cuda.synchronize()
    rows = [{"kind": "load", "seconds": time.perf_counter() - started}]
    tokenizer = AutoTokenizer.from_pretrained(str(args.model), local_files_only=True, padding_side="left")

    class StepClock(StoppingCriteria):
        """generate() asks this after every new token: the first call is the first token."""

        def __init__(self):
            self.first: float | None = None
            self.steps = 0

        def __call__(self, input_ids, scores, **kwargs):
            if self.first is None:
                torch.cuda.synchronize()
                self.first = time.perf_counter()
            self.steps += 1
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def one_batch(batch: list[str]) -> tuple[float, int, float]:
        inputs = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(DEVICE)
        clock = StepClock()
        torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=args.max_tokens,
                do_sample=True,
                temperature=1.0,
                top_p=0.95,
                top_k=40,
                stopping_criteria=StoppingCriteriaList([clock]),
                pad_token_id=tokenizer.pad_token_id,
            )
        torch.cuda.synchronize()
        wall = time.perf_counter() - started
        answers = output[:, inputs["input_ids"].shape[1] :]
        completion = int((answers != tokenizer.pad_token_id).sum())
        return clock.first - started, completion, wall

    one_batch([prompts.take(256)])  # warm-up
    for prompt_tokens in args.prompt_tokens:
        for concurrency in args.concurrency:
            try:
                first, completion, wall = one_batch([prompts.take(prompt_tokens) for _ in range(concurrency)])
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                rows.append(
                    {
                        "kind": "run",
                        "prompt_tokens": prompt_tokens,
                        "concurrency": concurrency,
                        "error": "out of GPU memory",
                    }
                )
                continue
            # One batch: every stream gets its first token at the same moment.
            rows.append(_row(prompt_tokens, concurrency, [first] * concurrency, completion, wall))
            print(f"  transformers: {prompt_tokens} tokens × {concurrency} streams done", file=sys.stderr)
    return rows


def _row(prompt_tokens: int, concurrency: int, firsts: list[float], completion: int, wall: float) -> dict:
    return {
        "kind": "run",
        "prompt_tokens": prompt_tokens,
        "concurrency": concurrency,
        "ttft_median": statistics.median(firsts) if firsts else None,
        "ttft_max": max(firsts, default=None),
        "output_tokens": completion,
        "wall": wall,
        "tokens_per_second": completion / wall if wall else 0.0,
    }


# --- the driver ----------------------------------------------------------------------------------------------------


def ensure_model(args: argparse.Namespace) -> Path:
    if args.model is not None:
        if not (args.model / "config.json").is_file():
            sys.exit(f"{args.model} is not a model folder (no config.json)")
        return args.model.resolve()
    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        from engines.tiny_models import make_qwen35

        print(f"building a random-weight Qwen3.5 in {DEFAULT_MODEL_DIR} (once)", file=sys.stderr)
        make_qwen35(DEFAULT_MODEL_DIR)
    return DEFAULT_MODEL_DIR


def run_backend(args: argparse.Namespace, backend: str) -> list[dict] | str:
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        command = [
            sys.executable,
            __file__,
            "--worker",
            backend,
            "--result",
            str(result),
            "--model",
            str(args.model),
            "--max-tokens",
            str(args.max_tokens),
            "--gpu-memory-fraction",
            str(args.gpu_memory_fraction),
            "--lmdeploy-backend",
            args.lmdeploy_backend,
            "--prompt-tokens",
            *map(str, args.prompt_tokens),
            "--concurrency",
            *map(str, args.concurrency),
        ]
        if args.enforce_eager:
            command.append("--enforce-eager")
        started = time.perf_counter()
        try:
            finished = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=args.timeout,
                env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"},
            )
        except subprocess.TimeoutExpired:
            return f"did not finish within {args.timeout} s"
        print(f"{backend}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        if finished.returncode != 0 or not result.is_file():
            tail = [line for line in finished.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
            return f"failed (exit {finished.returncode}): {tail[0][:200]}"
        return json.loads(result.read_text())


def markdown(results: dict[str, list[dict] | str]) -> str:
    lines = [
        "| backend | engine start | prompt | streams | first token, median | first token, max | "
        "output tokens/s (all streams) |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend, rows in results.items():
        if isinstance(rows, str):
            lines.append(f"| {backend} | {rows} | | | | | |")
            continue
        load = next(row["seconds"] for row in rows if row["kind"] == "load")
        for row in (row for row in rows if row["kind"] == "run"):
            start = f"{load:.1f} s"
            if "error" in row:
                lines.append(
                    f"| {backend} | {start} | {row['prompt_tokens']} | {row['concurrency']} | {row['error']} | | |"
                )
                continue
            lines.append(
                f"| {backend} | {start} | {row['prompt_tokens']} | {row['concurrency']} | "
                f"{_ms(row['ttft_median'])} | {_ms(row['ttft_max'])} | {row['tokens_per_second']:,.0f} |"
            )
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:,.0f} ms"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    gpu = require_gpu()
    if args.worker:
        run_worker(args)
        return
    args.model = ensure_model(args)
    config = json.loads((args.model / "config.json").read_text())
    shape = config.get("text_config", config)
    print(
        f"GPU: {gpu}; Python {platform.python_version()}; model {args.model.name} "
        f"({config.get('architectures', ['?'])[0]}: hidden {shape.get('hidden_size')}, "
        f"{shape.get('num_hidden_layers')} layers, vocabulary {shape.get('vocab_size')}); "
        f"{args.max_tokens} answer tokens per stream",
        file=sys.stderr,
    )
    results = {backend: run_backend(args, backend) for backend in args.backends}
    print(markdown(results))


if __name__ == "__main__":  # vLLM starts its engine core with spawn once CUDA is initialised
    main()
