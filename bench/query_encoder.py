"""Embedding one question: sentence-transformers on PyTorch against the ONNX Runtime export
(embedding/onnx_questions.py).

Both as the web process runs them (prepare_process_for_questions: one thread), on the Python 3.11 FAQ questions
(Debian's python3.11-doc), after a warm-up; prints p50 / p95 per question and how close the two vectors are. No
database: the export goes to var/bench-query-encoder/query-encoders (made once, ~5 s).

    .venv/bin/python bench/query_encoder.py [--rounds 3]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["KB_VAR_DIR"] = str(ROOT / "var" / "bench-query-encoder")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")

from bench.django_setup import django_setup  # noqa: E402

django_setup()

from embedding.encoders import prepare_process_for_questions  # noqa: E402

prepare_process_for_questions()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402

from embedding.encoders import question_encoder  # noqa: E402
from extract.parsing import parse_document  # noqa: E402

FAQ = Path("/usr/share/doc/python3.11/html/faq")


def faq_questions() -> list[str]:
    questions = []
    for page in sorted(FAQ.glob("*.html")):
        parsed = parse_document(data=page.read_bytes(), filename=page.name)
        questions += [section.heading for section in parsed.sections if section.heading.endswith("?")]
    return questions


def encoder(kind: str):
    return question_encoder("", backend=kind, onnx_cache_dir=settings.VAR_DIR / "query-encoders")


def timings(embed, questions: list[str]) -> list[float]:
    for question in questions[:10]:
        embed(question)
    measured = []
    for question in questions:
        started = time.perf_counter()
        embed(question)
        measured.append((time.perf_counter() - started) * 1000)
    return sorted(measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each encoder (default 3)")
    arguments = parser.parse_args()
    questions = faq_questions()
    encoders = {"sentence-transformers (PyTorch)": encoder("torch"), "ONNX Runtime export": encoder("onnx")}
    vectors = {name: np.stack([embed(question) for question in questions]) for name, embed in encoders.items()}
    torch_vectors, onnx_vectors = vectors.values()
    cosines = np.sum(torch_vectors * onnx_vectors, axis=1)
    results = {name: [] for name in encoders}
    for _ in range(arguments.rounds):
        for name, embed in encoders.items():
            results[name] += timings(embed, questions)
    print(
        f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {len(questions)} FAQ questions, "
        f"{arguments.rounds} rounds; cosine between the two vectors: min {cosines.min():.7f}, "
        f"median {np.median(cosines):.7f}"
    )
    print("| question encoder (1 thread) | p50 | p95 |")
    print("|---|---:|---:|")
    for name, measured in results.items():
        measured.sort()
        print(f"| {name} | {statistics.median(measured):.2f} ms | {measured[int(0.95 * len(measured)) - 1]:.2f} ms |")


if __name__ == "__main__":
    main()
