"""End-to-end ingestion speed against the embedding model's own speed on the same passages.

Uploads pages of the Python 3.11 HTML documentation (Debian's python3.11-doc) and the log samples of Debian's
fail2ban (as .log files, chunked into time windows) through the app's services and ingests
each with the same service the Celery worker runs (parse, chunk, embed, write chunks and vectors into pgvector with
its HNSW index), in one process. Then encodes the very same passage texts with `SentenceTransformer.encode` alone.
The ratio of the two rates shows how much of ingestion is the model and how much is our code. Broker latency is not
included (the worker picks up the next job at once while jobs are queued).

    .venv/bin/python bench/ingest_throughput.py [--pages 60]    # 0 = every page (~500, long on 2 cores)

It uses its own embedded PostgreSQL under var/bench, created afresh each run and stopped at the end.
"""

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VAR = ROOT / "var" / "bench"
sys.path.insert(0, str(ROOT))
os.environ["KB_VAR_DIR"] = str(BENCH_VAR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
os.environ.pop("DATABASE_URL", None)

from kb.platform.embedded_pg import server_stop  # noqa: E402

if (BENCH_VAR / "pg").exists():
    server_stop(BENCH_VAR / "pg")
shutil.rmtree(BENCH_VAR, ignore_errors=True)

from bench.django_setup import django_setup  # noqa: E402

django_setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from kb.accounts.models import Membership  # noqa: E402
from kb.accounts.services import department_create, membership_create, user_create  # noqa: E402
from kb.documents.embedding_models import passages_embed_for_active_model  # noqa: E402
from kb.documents.models import Chunk, Collection, DocumentVersion  # noqa: E402
from kb.documents.services import (  # noqa: E402
    UploadRejected,
    collection_create,
    document_upload,
    document_version_ingest,
)
from kb.platform.actors import system_actor  # noqa: E402

DOCS = Path("/usr/share/doc/python3.11/html")
LOGS = Path("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs")


def fresh_collection():
    department = department_create(acting_user=system_actor(), name="Bench")
    admin = user_create(acting_user=system_actor(), username="bench", password="bench-password-1")
    membership_create(acting_user=system_actor(), user=admin, department=department, role=Membership.Role.ADMIN)
    collection = collection_create(
        acting_user=system_actor(), name="Python docs", owner=department, visibility=Collection.Visibility.COMPANY
    )
    return admin, collection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=60, help="number of HTML pages (0 = all)")
    arguments = parser.parse_args()
    call_command("migrate", verbosity=0)
    pages = sorted(p for p in DOCS.rglob("*.html") if "_static" not in p.parts and p.stat().st_size > 4000)
    if arguments.pages:
        step = max(1, len(pages) // arguments.pages)
        pages = pages[::step][: arguments.pages]
    uploads = [(str(page.relative_to(DOCS)), page) for page in pages]
    uploads += [(f"fail2ban/{log.name}.log", log) for log in sorted(LOGS.iterdir()) if log.is_file()]
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, torch threads default; "
        f"{len(pages)} pages of {DOCS} and {len(uploads) - len(pages)} logs of {LOGS}; "
        f"chunk {settings.KB_CHUNK_TOKENS} tokens, "
        f"batch {settings.KB_EMBEDDING_BATCH_SIZE}",
        flush=True,
    )
    passages_embed_for_active_model(["warm-up"])
    admin, collection = fresh_collection()

    started = time.perf_counter()
    for number, (name, path) in enumerate(uploads, start=1):
        try:
            version = document_upload(
                acting_user=admin, collection=collection, name=name, data=path.read_bytes(), enqueue=False
            )
        except UploadRejected as refused:
            print(f"  skipped {refused}")
            continue
        document_version_ingest(version_id=version.pk)
        if number % 20 == 0 or number == len(uploads):
            elapsed = time.perf_counter() - started
            print(f"  {number}/{len(uploads)} files, {Chunk.objects.count()} chunks, {elapsed:.0f} s", flush=True)
    end_to_end = time.perf_counter() - started
    failed = DocumentVersion.objects.filter(status=DocumentVersion.Status.FAILED).count()
    texts = [f"{heading}\n{text}" for heading, text in Chunk.objects.order_by("id").values_list("heading", "text")]

    started = time.perf_counter()
    passages_embed_for_active_model(texts)
    encode_only = time.perf_counter() - started

    end_to_end_rate = len(texts) / end_to_end
    encode_rate = len(texts) / encode_only
    log_chunks = Chunk.objects.exclude(time_start=None).count()
    print(
        f"documents: {len(uploads)} ({failed} failed) in {end_to_end:.1f} s = {len(uploads) / end_to_end:.2f} docs/s;"
        f" {log_chunks} of the chunks are log windows"
    )
    print(
        f"chunks: {len(texts)}; end to end {end_to_end_rate:.1f} chunks/s; "
        f"SentenceTransformer.encode alone {encode_rate:.1f} chunks/s; ratio {end_to_end_rate / encode_rate:.2f}"
    )
    server_stop(BENCH_VAR / "pg")


if __name__ == "__main__":
    main()
