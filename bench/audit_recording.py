"""What recording a query costs: `query_record_create` (the record, its passages, the hash-chain link, one durable
commit), as the chat service calls it for every answer, timed per query on a chain that already holds many entries.
The permission filter it records is the one the search read and applied (passages_search_with_filter_for_user), so
it is read outside the timed part, once per query, as the search does.

    .venv/bin/python bench/audit_recording.py [--queries 1000] [--chain 20000] [--passages 4] [--writers 1]

`--writers N` records from N threads at once (each its own connection, --queries each), as N answers finishing
together would: every record links after the one before it, so they contend for the chain's head.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VAR = ROOT / "var" / "bench-audit-recording"
sys.path.insert(0, str(ROOT))
os.environ["KB_VAR_DIR"] = str(BENCH_VAR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
os.environ.pop("DATABASE_URL", None)

from bench.django_setup import django_setup  # noqa: E402

django_setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from kb.accounts.models import User  # noqa: E402
from kb.accounts.services import user_create  # noqa: E402
from kb.audit.models import LedgerEntry  # noqa: E402
from kb.audit.services import RecordedPassage, query_record_create  # noqa: E402
from kb.documents.selectors import permission_filter_of  # noqa: E402
from kb.platform.actors import system_actor  # noqa: E402
from kb.platform.embedded_pg import server_stop  # noqa: E402

PASSAGE = (
    "The notice period for employees is three months, counted from the first day of the month after "
    "notice is given; see the staff handbook, section 4.2, for exceptions during probation. "
) * 3


def record_once(user: User, number: int, passages: int) -> float:
    permission_filter = permission_filter_of(user=user)
    started = time.perf_counter()
    query_record_create(
        user=user,
        department_names=permission_filter["department_names"],
        question=f"What is the notice period? ({number})",
        answer="Three months [1]." * 20,
        model="qwen3.5-4b",
        backend="vllm",
        route={"skipped": []},
        generation_params={"temperature": 1.0},
        prompt_tokens=1800,
        completion_tokens=240,
        retrieval_ms=35,
        first_token_ms=180,
        total_ms=2400,
        scope={"mode": "hybrid", "k": passages},
        permission_filter=permission_filter,
        citations=[{"number": 1, "chunk_id": 10, "document_id": 2}],
        passages=[
            RecordedPassage(
                chunk_id=10 + rank, document_id=2, version_id=3, score=0.8, sent_to_model=True, text=PASSAGE
            )
            for rank in range(passages)
        ],
    )
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=20000, help="entries in the chain before measuring")
    parser.add_argument("--passages", type=int, default=4)
    parser.add_argument("--writers", type=int, default=1, help="threads recording at once")
    arguments = parser.parse_args()
    call_command("migrate", verbosity=0)
    user = User.objects.filter(username="bench").first() or user_create(
        acting_user=system_actor(), username="bench", password="bench-password-1"
    )
    existing = LedgerEntry.objects.count()
    if existing < arguments.chain:
        print(f"filling the chain to {arguments.chain:,} entries ...", flush=True)
        for number in range(existing, arguments.chain):
            record_once(user, number, arguments.passages)
    timings: list[float] = []
    start = threading.Barrier(arguments.writers)

    def write() -> None:
        for number in range(50):  # warm-up: connections, caches
            record_once(user, number, arguments.passages)
        start.wait()
        timings.extend(record_once(user, number, arguments.passages) for number in range(arguments.queries))
        connection.close()  # this thread's own

    writers = [threading.Thread(target=write) for _ in range(arguments.writers)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    timings.sort()
    p95 = timings[int(0.95 * len(timings)) - 1]
    print(
        f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; chain "
        f"{LedgerEntry.objects.count():,} entries; {arguments.passages} passages of {len(PASSAGE)} characters"
    )
    print("| writers | recorded queries | p50 | p95 | max |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {arguments.writers} | {len(timings)} | {statistics.median(timings):.2f} ms | {p95:.2f} ms | "
        f"{timings[-1]:.2f} ms |"
    )
    connection.close()
    server_stop(BENCH_VAR / "pg")


if __name__ == "__main__":
    main()
