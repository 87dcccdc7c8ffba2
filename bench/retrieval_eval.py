"""Retrieval quality on the Python 3.11 FAQ: dense, keyword and hybrid, over the whole Python documentation.

Queries are the FAQ questions of Debian's python3.11-doc (`faq/*.html`); the gold passages of a question are the
chunks that overlap its FAQ entry (same page, the span of the section headed by the question). The corpus is every
HTML page of the documentation, ingested by `bench/ingest_throughput.py --pages 0` into var/bench (this script
ingests the pages itself when that database is empty). Metrics: Recall@5 (a gold passage in the top 5), MRR@10,
nDCG@10 (binary relevance).

    .venv/bin/python bench/retrieval_eval.py

Caveat: a FAQ entry's chunks carry the question as their heading or text, which both retrievers see; this measures
how well each finds the right entry among ~18,000 passages, not robustness to paraphrase.
"""

import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VAR = ROOT / "var" / "bench"
sys.path.insert(0, str(ROOT))
os.environ["KB_VAR_DIR"] = str(BENCH_VAR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
os.environ.pop("DATABASE_URL", None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from extract.parsing import parse_document  # noqa: E402
from kb.accounts.models import Membership, User  # noqa: E402
from kb.accounts.services import department_create, membership_create, user_create  # noqa: E402
from kb.documents.models import Chunk, Collection, Document  # noqa: E402
from kb.documents.services import collection_create, document_upload, document_version_ingest  # noqa: E402
from kb.platform.actors import system_actor  # noqa: E402
from kb.platform.embedded_pg import server_stop  # noqa: E402
from kb.search.selectors import passages_search_for_user  # noqa: E402

DOCS = Path("/usr/share/doc/python3.11/html")
MODES = ("dense", "keyword", "hybrid")


def corpus_user() -> User:
    if not Document.objects.filter(original_name__startswith="faq/").exists():
        print("ingesting the whole Python documentation (about 20 minutes on 2 cores) ...", flush=True)
        department = department_create(acting_user=system_actor(), name="Bench")
        admin = user_create(acting_user=system_actor(), username="bench", password="bench-password-1")
        membership_create(acting_user=system_actor(), user=admin, department=department, role=Membership.Role.ADMIN)
        collection = collection_create(
            acting_user=system_actor(), name="Python docs", owner=department, visibility=Collection.Visibility.COMPANY
        )
        pages = sorted(p for p in DOCS.rglob("*.html") if "_static" not in p.parts)
        for number, page in enumerate(pages, start=1):
            version = document_upload(
                acting_user=admin, collection=collection, name=str(page.relative_to(DOCS)), data=page.read_bytes()
            )
            document_version_ingest(version_id=version.pk)
            if number % 50 == 0:
                print(f"  {number}/{len(pages)} pages", flush=True)
    return User.objects.get(username="bench")


def faq_questions() -> list[tuple[str, set[int]]]:
    """(question, ids of its gold chunks) for every FAQ entry found in the corpus."""
    cases = []
    for page in sorted((DOCS / "faq").glob("*.html")):
        document = Document.objects.get(original_name=str(page.relative_to(DOCS)))
        parsed = parse_document(data=page.read_bytes(), filename=page.name)
        for section in parsed.sections:
            if not section.heading.endswith("?"):
                continue
            # Small entries share a chunk with their neighbours: any chunk overlapping the entry is a right answer.
            gold = set(
                Chunk.objects.filter(
                    version=document.current_version_id, char_start__lt=section.end, char_end__gt=section.start
                ).values_list("pk", flat=True)
            )
            if gold:
                cases.append((section.heading, gold))
    return cases


def metrics(ranked: list[int], gold: set[int]) -> tuple[float, float, float]:
    top10 = ranked[:10]
    recall5 = float(any(chunk in gold for chunk in ranked[:5]))
    first = next((rank for rank, chunk in enumerate(top10, start=1) if chunk in gold), None)
    mrr = 1.0 / first if first else 0.0
    dcg = sum(1.0 / math.log2(rank + 1) for rank, chunk in enumerate(top10, start=1) if chunk in gold)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), 10) + 1))
    return recall5, mrr, dcg / ideal


def main() -> None:
    call_command("migrate", verbosity=0)
    user = corpus_user()
    cases = faq_questions()
    print(
        f"corpus: {Document.objects.count()} documents, {Chunk.objects.count()} passages; {len(cases)} FAQ questions",
        flush=True,
    )
    print(f"{'mode':<8} {'Recall@5':>9} {'MRR@10':>8} {'nDCG@10':>8} {'ms/query':>9}")
    for mode in MODES:
        scores, started = [], time.perf_counter()
        for question, gold in cases:
            hits = passages_search_for_user(user=user, query_text=question, k=10, mode=mode)
            scores.append(metrics([hit.chunk_id for hit in hits], gold))
        elapsed_ms = (time.perf_counter() - started) * 1000 / len(cases)
        recall5, mrr, ndcg = (statistics.fmean(values) for values in zip(*scores))
        print(f"{mode:<8} {recall5:>9.3f} {mrr:>8.3f} {ndcg:>8.3f} {elapsed_ms:>9.0f}", flush=True)
    server_stop(BENCH_VAR / "pg")


if __name__ == "__main__":
    main()
