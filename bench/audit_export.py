"""Query-log exports at scale: rows per second and the exporting process's memory, for CSV and JSON Lines.

What the compliance issue asks: exports "streamed for any range (constant memory for millions of rows)". This
generates N query records (default 1,000,000) with their passages and some feedback, then exports all of them as an
auditor through the real code path and watches the process's resident memory at 10%, 50% and 100% of the rows.

    .venv/bin/python bench/audit_export.py --rows 20000      # ~1 minute: check the set-up
    .venv/bin/python bench/audit_export.py                   # 1,000,000 records (see below)

It uses its own embedded PostgreSQL under var/bench-audit, one database per size and passages per record
(`kb_audit_<rows>_<passages>`), kept between runs: a second run with the same parameters finds the data and only
measures. `--reload` generates it again.

The data
- 6 departments (Finance › Payroll, Legal, IT, Sales, Operations) made by the department_create service, 40 users and
  one auditor by bulk_create (unusable passwords; the auditor's session is made with force_login).
- Records, passages and feedback are generated in the database with INSERT ... SELECT over generate_series, in
  batches of 100,000 records, by direct SQL: NOT through query_record_create. So the rows have no ledger entries
  (the audit hash chain; `manage.py audit_verify` would report them) and nothing is updated or deleted (the
  append-only triggers refuse that; generation only inserts). The point here is the export's memory, not the chain.
- Per record: a question (~60 characters), an answer (60-400), generation parameters, scope, permission filter and
  citations as JSON, 10% with thinking text; --passages passages (default 4) of ~250-550 characters each (none for
  the 1% flagged "no_passages"); 5% flagged "removed_citations"; 10% with a feedback row; created_at spread over the
  past year (one record every 30 s at 1M).
- At 1,000,000 records and 4 passages: ~4M passage rows, about 3.5 GB of database (20,000 records: 75 MB), and
  generation in roughly 1.5-4 minutes on 2 cores (20,000 records: 1.4 s; VACUUM ANALYZE afterwards).

What is measured
- Each export is a GET of /audit/queries/export.csv or export.jsonl (optionally with --query, the list's filter
  parameters) as the auditor, through Django's own ASGI handler (`django.core.asgi.get_asgi_application()`, the
  application uvicorn serves, without kb.asgi's model warm-up) with a session cookie; the body goes to /dev/null.
  With --paths wsgi it is also read through Django's test Client (the synchronous, WSGI-style path).
- Each path first serves one export that matches nothing (imports, URL resolution and sessions warmed up; it is
  audited like any other). The process's RSS (psutil) is read at every body message (64 KiB); at 10%, 50% and 100%
  of the records the table
  shows records so far, elapsed time, records/s, current RSS and the highest RSS seen so far in that export, next to
  the RSS before it started. Records are counted as newlines in the body (generated texts contain none; a CSV has
  one header line).
- Constant memory means: RSS at 100% is about RSS at 10%, whatever the number of records.
"""

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VAR = ROOT / "var" / "bench-audit"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="query records to generate (default 1,000,000)")
    parser.add_argument("--passages", type=int, default=4, help="passages per record (default 4)")
    parser.add_argument("--formats", default="csv,jsonl", help="exports to run (default csv,jsonl)")
    parser.add_argument("--paths", default="asgi", help="asgi and/or wsgi (default asgi, what uvicorn serves)")
    parser.add_argument("--query", default="", help="filter parameters as in the list's URL, e.g. 'flagged=on'")
    parser.add_argument("--reload", action="store_true", help="generate the data again even if it is there")
    return parser.parse_args()


ARGUMENTS = parse_arguments() if __name__ == "__main__" else None
DATABASE = f"kb_audit_{ARGUMENTS.rows}_{ARGUMENTS.passages}" if ARGUMENTS else "kb_audit"
sys.path.insert(0, str(ROOT))
os.environ["KB_VAR_DIR"] = str(BENCH_VAR)
os.environ["DJANGO_SETTINGS_MODULE"] = "kb.settings"
os.environ["KB_EMBEDDED_DATABASE"] = DATABASE
os.environ["DJANGO_DEBUG"] = "false"  # DEBUG would keep every query's SQL
os.environ.pop("DATABASE_URL", None)

from bench.django_setup import django_setup  # noqa: E402

django_setup()

import psutil  # noqa: E402
import psycopg  # noqa: E402
from asgiref.sync import async_to_sync  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.http import QueryDict  # noqa: E402
from django.test import Client  # noqa: E402
from psycopg import sql  # noqa: E402

from kb.accounts.models import Membership, User  # noqa: E402
from kb.accounts.services import department_create  # noqa: E402
from kb.audit.models import QueryRecord  # noqa: E402
from kb.audit.selectors import query_records_for_auditor  # noqa: E402
from kb.audit.views import QueryLogFilterForm  # noqa: E402
from kb.platform.actors import system_actor  # noqa: E402
from kb.platform.embedded_pg import database_ensure, server_stop  # noqa: E402

BATCH = 100_000
POINTS = (0.10, 0.50, 1.00)
MIB = 1024 * 1024
PROCESS = psutil.Process()


def rss() -> int:
    return PROCESS.memory_info().rss


# ---------------------------------------------------------------------------------------------------------------------
# The data


def marker_file() -> Path:
    return BENCH_VAR / f"{DATABASE}.loaded.json"


def recreate_database() -> None:
    """--reload: the rows cannot be deleted (append-only), so the whole database goes and comes back empty."""
    socket_dir = connection.get_connection_params()["host"]
    connection.close()
    marker_file().unlink(missing_ok=True)
    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
    database_ensure(socket_dir=socket_dir, name=DATABASE)


def loaded_marker(arguments: argparse.Namespace) -> dict | None:
    if not marker_file().exists():
        return None
    marker = json.loads(marker_file().read_text())
    if QueryRecord.objects.count() != marker["rows"]:
        return None
    return marker


def organisation() -> tuple[list[tuple[int, list[str]]], User]:
    """Departments by the service (it writes the tree's closure), users in bulk; (user id, department names)."""
    finance = department_create(acting_user=system_actor(), name="Finance")
    departments = [department_create(acting_user=system_actor(), name="Payroll", parent=finance)]
    departments += [
        department_create(acting_user=system_actor(), name=name) for name in ("Legal", "IT", "Sales", "Operations")
    ]
    users = User.objects.bulk_create(User(username=f"bench-user-{n:02d}", password="!") for n in range(40))
    Membership.objects.bulk_create(
        Membership(user=user, department=departments[n % len(departments)]) for n, user in enumerate(users)
    )
    names = {
        department.pk: (["Finance", "Payroll"] if department.name == "Payroll" else [department.name])
        for department in departments
    }
    auditor = User.objects.create(username="bench-auditor", password="!", role=User.Role.AUDITOR)
    return [(user.pk, names[departments[n % len(departments)].pk]) for n, user in enumerate(users)], auditor


RECORDS_SQL = """
INSERT INTO audit_queryrecord (user_id, department_names, channel, question, answer, model, backend, route,
    generation_params, thinking, prompt_tokens, completion_tokens, retrieval_ms, first_token_ms, total_ms, error,
    scope, permission_filter, citations, flags, created_at)
SELECT (%(users)s::bigint[])[1 + g %% %(user_count)s],
       (%(departments)s::jsonb[])[1 + g %% %(user_count)s],
       'web',
       'How do I handle case ' || g || ' of ' ||
           (ARRAY['expense claims', 'leave requests', 'VPN access', 'contracts', 'travel'])[1 + g %% 5] || '?',
       'According to the policy [1], ' || repeat('the request goes to your manager, then to the team that owns it. ',
                                                 1 + g %% 6),
       (ARRAY['qwen3.5-9b', 'smollm2-135m'])[1 + g %% 2],
       (ARRAY['vllm', 'llama_cpp'])[1 + g %% 2],
       '{}'::jsonb,
       '{"temperature": 0.2, "top_p": 0.9, "max_tokens": 512, "enable_thinking": false}'::jsonb,
       CASE WHEN g %% 10 = 0 THEN 'The user asks about a policy; passage 1 answers it directly.' ELSE '' END,
       300 + g %% 200, 40 + g %% 100, 10 + g %% 40, 80 + g %% 300, 400 + g %% 3000, '',
       '{"mode": "hybrid", "k": 4, "filters": {}}'::jsonb,
       '{"role": "employee", "departments": [1, 2], "collections": [1, 2, 3]}'::jsonb,
       jsonb_build_array(jsonb_build_object('number', 1, 'chunk_id', g * 10 + 1)),
       CASE WHEN g %% 100 = 0 THEN '["no_passages"]'::jsonb
            WHEN g %% 20 = 0 THEN '["removed_citations"]'::jsonb ELSE '[]'::jsonb END,
       now() - (%(rows)s - g) * interval '30 seconds'
FROM generate_series(%(first)s, %(last)s) AS g
"""

PASSAGES_SQL = """
INSERT INTO audit_querypassage (query_id, rank, chunk_id, document_id, version_id, score, sent_to_model, text)
SELECT q.id, r, q.id * 10 + r, 1 + q.id %% 5000, 1 + q.id %% 5000, 1.0 / (r + 1), r <= 3,
       'Passage ' || r || ' of record ' || q.id || ': ' ||
           repeat('Expense claims are filed within thirty days, with the receipts attached. ', 3 + r %% 5)
FROM audit_queryrecord q CROSS JOIN generate_series(1, %(passages)s) AS r
WHERE q.id > %(after)s AND NOT q.flags @> '["no_passages"]'::jsonb
"""

FEEDBACK_SQL = """
INSERT INTO audit_queryfeedback (query_id, user_id, rating, comment, created_at)
SELECT q.id, q.user_id, CASE WHEN q.id %% 3 = 0 THEN -1 ELSE 1 END,
       CASE WHEN q.id %% 3 = 0 THEN 'Did not answer the question.' ELSE '' END, q.created_at + interval '1 minute'
FROM audit_queryrecord q WHERE q.id > %(after)s AND q.id %% 10 = 0
"""


def generate(arguments: argparse.Namespace) -> dict:
    started = time.perf_counter()
    with transaction.atomic():
        users, _auditor = organisation()
    user_ids = [user_id for user_id, _ in users]
    departments = [json.dumps(names) for _, names in users]
    print(
        f"generating {arguments.rows:,} records with {arguments.passages} passages each, directly in SQL "
        f"(INSERT ... SELECT generate_series): no services, so NO ledger entries; the point is export memory",
        flush=True,
    )
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for first in range(1, arguments.rows + 1, BATCH):
            last = min(first + BATCH - 1, arguments.rows)
            with transaction.atomic():
                cursor.execute("SELECT coalesce(max(id), 0) FROM audit_queryrecord")
                after = cursor.fetchone()[0]
                cursor.execute(
                    RECORDS_SQL,
                    {
                        "users": user_ids,
                        "departments": departments,
                        "user_count": len(users),
                        "rows": arguments.rows,
                        "first": first,
                        "last": last,
                    },
                )
                cursor.execute(PASSAGES_SQL, {"passages": arguments.passages, "after": after})
                cursor.execute(FEEDBACK_SQL, {"after": after})
            print(f"  {last:,}/{arguments.rows:,} records, {time.perf_counter() - started:.0f} s", flush=True)
        generated = time.perf_counter() - started
        for table in ("audit_queryrecord", "audit_querypassage", "audit_queryfeedback"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    marker = {
        "rows": arguments.rows,
        "passages": arguments.passages,
        "generate_seconds": round(generated, 1),
        "database_size": size,
    }
    marker_file().write_text(json.dumps(marker))
    print(f"generated in {generated:.1f} s ({arguments.rows / generated:,.0f} records/s); database {size}", flush=True)
    return marker


# ---------------------------------------------------------------------------------------------------------------------
# The exports


class Watch:
    """Counts records (newlines) in the body as it leaves, samples RSS, and notes each checkpoint."""

    def __init__(self, *, expected: int, header_lines: int):
        self.expected, self.header_lines = expected, header_lines
        self.lines = self.bytes = 0
        self.baseline = rss()
        self.peak = self.baseline
        self.points: list[dict] = []
        self.pending = list(POINTS)
        self.sink = open(os.devnull, "wb")
        self.started = time.perf_counter()

    @property
    def records(self) -> int:
        return max(0, self.lines - self.header_lines)

    def body(self, chunk: bytes) -> None:
        self.sink.write(chunk)
        self.lines += chunk.count(b"\n")
        self.bytes += len(chunk)
        now = rss()
        self.peak = max(self.peak, now)
        while self.pending and self.records >= self.pending[0] * self.expected:
            elapsed = time.perf_counter() - self.started
            self.points.append(
                {
                    "share": self.pending.pop(0),
                    "records": self.records,
                    "seconds": elapsed,
                    "rate": self.records / elapsed if elapsed else 0.0,
                    "rss": now,
                    "peak": self.peak,
                }
            )

    def close(self) -> None:
        self.sink.close()


def session_cookie(auditor: User) -> str:
    client = Client()
    client.force_login(auditor)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def export_asgi(*, path: str, query: str, cookie: str, watch: Watch) -> int:
    application = get_asgi_application()
    status = {}

    async def run() -> None:
        done = asyncio.Event()
        requested = False

        async def receive():
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body":
                watch.body(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"localhost"), (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await application(scope, receive, send)

    async_to_sync(run)()
    return status.get("code", 0)


def export_wsgi(*, path: str, query: str, auditor: User, watch: Watch) -> int:
    client = Client(HTTP_HOST="localhost")
    client.force_login(auditor)
    response = client.get(f"{path}?{query}" if query else path)
    for chunk in response.streaming_content:
        watch.body(chunk)
    response.close()
    return response.status_code


def expected_records(auditor: User, query: str) -> int:
    form = QueryLogFilterForm(QueryDict(query), auditing=True)
    if not form.is_valid():
        raise SystemExit(f"--query: {form.errors.as_text()}")
    return query_records_for_auditor(user=auditor, filters=form.filters()).count()


def main() -> None:
    arguments = ARGUMENTS
    if arguments.reload:
        recreate_database()
    call_command("migrate", verbosity=0)
    marker = loaded_marker(arguments)
    if marker is None:
        if QueryRecord.objects.exists() or User.objects.exists():
            raise SystemExit(f"{DATABASE} holds data of an unfinished run: run again with --reload")
        marker = generate(arguments)
    else:
        print(f"reusing the {marker['rows']:,} records generated before (--reload to generate again)", flush=True)
    auditor = User.objects.get(username="bench-auditor")
    expected = expected_records(auditor, arguments.query)
    cookie = session_cookie(auditor)
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}; database {DATABASE} ({marker['database_size']}); "
        f"exporting {expected:,} records{' for ' + arguments.query if arguments.query else ''}",
        flush=True,
    )
    # One export that matches nothing first, per path: imports, URL resolution and templates are loaded before any
    # RSS is read, so the table shows what the rows cost.
    for way in arguments.paths.split(","):
        warm = Watch(expected=0, header_lines=0)
        if way == "asgi":
            export_asgi(path="/audit/queries/export.jsonl", query="username=-", cookie=cookie, watch=warm)
        else:
            export_wsgi(path="/audit/queries/export.jsonl", query="username=-", auditor=auditor, watch=warm)
        warm.close()
    results = []
    for export_format in arguments.formats.split(","):
        path = f"/audit/queries/export.{export_format}"
        for way in arguments.paths.split(","):
            watch = Watch(expected=expected, header_lines=1 if export_format == "csv" else 0)
            if way == "asgi":
                status = export_asgi(path=path, query=arguments.query, cookie=cookie, watch=watch)
            else:
                status = export_wsgi(path=path, query=arguments.query, auditor=auditor, watch=watch)
            watch.close()
            if status != 200 or watch.records != expected:
                raise SystemExit(f"{export_format}/{way}: status {status}, {watch.records:,} of {expected:,} records")
            print(
                f"  {export_format} via {way}: {watch.records:,} records, {watch.bytes / MIB:,.0f} MiB in "
                f"{watch.points[-1]['seconds']:.1f} s",
                flush=True,
            )
            results.append((export_format, way, watch))
    report(results, expected)
    connection.close()
    server_stop(BENCH_VAR / "pg")


def report(results: list, expected: int) -> None:
    print()
    print(f"Exports of {expected:,} query records (RSS of the exporting process; 'before' is just before the request)")
    print()
    print(
        "| export | served by | at | records | elapsed s | records/s | RSS MiB | peak RSS MiB so far | RSS before MiB |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for export_format, way, watch in results:
        for point in watch.points:
            print(
                f"| {export_format} | {way} | {point['share']:.0%} | {point['records']:,} | {point['seconds']:.1f} | "
                f"{point['rate']:,.0f} | {point['rss'] / MIB:.1f} | {point['peak'] / MIB:.1f} | "
                f"{watch.baseline / MIB:.1f} |"
            )
    print()
    print(
        f"process peak RSS over the whole run (ru_maxrss, generation included): "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB"
    )


if __name__ == "__main__":
    main()
