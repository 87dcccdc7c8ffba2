"""Permission-filtered search at scale: latency, recall against exact search, and short result lists.

What the permissions issue asks: with 1,000,000 chunks of 384 dimensions across 50 departments, on this machine,
p50/p95 latency of permission-filtered hybrid search, recall@10 against exact search under the same filter, and how
often fewer than k results come back — compared with the naive approach (an unfiltered HNSW scan, then a Python
post-filter). Targets: p95 <= 50 ms, recall@10 >= 0.95, never fewer than k when k visible chunks exist.

    .venv/bin/python bench/permission_search_scale.py --chunks 50000     # a few minutes: check the set-up
    .venv/bin/python bench/permission_search_scale.py                    # 1,000,000 chunks (see below)

At 50,000 chunks the load takes ~35 s and the measurement ~4 minutes on 2 cores. For 1,000,000, extrapolated from
those runs: COPY ~3 minutes, GIN index ~0.5 minute, HNSW index ~6-10 minutes (maintenance_work_mem 4GB holds the
whole graph), VACUUM ANALYZE ~1 minute, ~8 GB of disk; the measurement then takes longer than the load (the exact
ground truth and today's keyword search scan the whole table), so plan on about an hour in all. The first run also
embeds the 3,000 base passages (~4-7 minutes, cached afterwards).

It uses its own embedded PostgreSQL under var/bench-scale, with shared_buffers --shared-buffers (6GB; it restarts
the server when that changes), one database per size (`kb_scale_<chunks>`), kept between runs: a second run with the
same parameters finds the data (a marker in the database's folder, and the chunk count) and only measures.
`--reload` forces a fresh load.

The data
- Base passages: pages of the Python 3.11 documentation (Debian's python3.11-doc), parsed and chunked by the app's
  own code (KB_CHUNK_TOKENS and KB_CHUNK_OVERLAP_TOKENS: 256 and 64 since issue 17, 200 and 30 before), at
  most --base passages (3,000), embedded once with the real model
  (all-MiniLM-L6-v2 through embedding.encoders) and cached in var/bench-scale/base/.
- Chunks: every document is a noisy copy of one base page (its chunks in order, its real headings and texts, so
  the keyword side sees real words and real lengths); a vector is its base passage's vector plus Gaussian noise,
  renormalised. The noise is drawn from N(0, c * Cov(base vectors)) — the base set's own covariance, so a copy
  drifts along directions real passages vary in, not into the isotropic random space (random vectors are HNSW's
  worst case and unlike real embeddings) — with c chosen so that the noise has --noise (0.8) times the norm of the
  base vector. Then a copy keeps cosine ~0.79 to its base and two copies of one base ~0.6 to each other: less than
  a real passage to its nearest other passage in this corpus (median ~0.78), so copies are as different from one
  another as distinct passages on neighbouring topics, and the HNSW graph is not 3,000 tight islands. The run
  prints what that gives, including how many different base passages the exact top 10 of a query mixes. With
  ~330 copies of each base at 1M, the top 10 of a question whose answer is clearly closer than the rest is still
  mostly copies of that answer (noise 0.6: 91%, 0.8: 86%, 1.2: 78% in a simulation): the inherent limit of 3,000
  real passages standing for a million; the search must then pick the right 10 of hundreds of near-ties, and a
  filtered search must cross from cluster to cluster.
- Organisation: 50 departments, one user each. Departments 1-49 own collections of Zipf-like sizes (the largest
  ~17% of all chunks, the median ~1%), in 7 divisions; a collection is granted to each department of its own division
  with probability 0.35 and to any other department with probability 0.03. Company-wide collections hold 0.5% of the
  chunks. Department 0 ("narrow") owns 0.4% and has one grant of a 0.1% collection: with the company-wide share it
  reads ~1%. A contractor belongs to no department and has one single-user grant (0.5%): another ~1% reader, half
  of it company-wide. The actual visible fraction of every user class is printed.
- Departments are made by the department_create service (it also writes the department tree's closure rows that
  permissions read); users, memberships, collections, grants, documents and versions with the project's models by
  bulk_create, and chunks by PostgreSQL COPY: the services are far too slow for a million rows, and the audit rows
  they write are irrelevant here. The HNSW and GIN indexes of the chunk table are dropped before
  COPY and rebuilt after it from the model's own index definitions (those the migrations create).
- Queries: the Python FAQ questions (as bench/retrieval_eval.py reads them), embedded by the real query path.

What is timed (time.perf_counter around the selector call, Django ORM included), per user class, after a warm-up:
- hybrid: `passages_search_for_user(mode="hybrid", k)` as the app calls it, query embedding included;
- its parts: `embed_query`, the dense ranking with the candidate pool hybrid asks for (k*5) and
  the keyword ranking with that pool; also the dense ranking alone with k (`dense_search`, `keyword_search`);
- exact: the same readable-chunks queryset ordered by cosine distance with index scans off (`SET LOCAL
  enable_indexscan = off`: no HNSW, a sequential or bitmap scan and a sort) — the ground truth, timed for reference;
- naive: an unfiltered HNSW scan (`hnsw.iterative_scan = off`, ef_search 40 and LIMIT 40, and a wider ef_search 200
  and LIMIT 200), then the user's readable collection ids (one query, timed) filtered in Python.
Recall@10: dense ANN top k against exact top k under the same filter; hybrid against the same fusion of the exact
dense list with the keyword list (kb.search.selectors.fused). "< k" counts queries that returned
fewer than k results although the user can read at least k chunks.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VAR = ROOT / "var" / "bench-scale"
DOCS = Path("/usr/share/doc/python3.11/html")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000, help="chunks to generate (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=100, help="measured queries per user class (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured queries per class first (default 10)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--base", type=int, default=3000, help="real passages embedded as the base (default 3,000)")
    parser.add_argument("--noise", type=float, default=0.8, help="noise norm relative to the base vector (0.8)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--maintenance-work-mem", default="4GB")
    parser.add_argument(
        "--maintenance-workers",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="max_parallel_maintenance_workers for the index builds (default: CPUs - 1)",
    )
    parser.add_argument(
        "--shared-buffers",
        default="6GB",
        help="the server's shared_buffers (default 6GB: a quarter of this machine's memory, as "
        "PostgreSQL's documentation suggests for a dedicated server; 128MB holds 2%% of the data)",
    )
    parser.add_argument("--reload", action="store_true", help="load the data again even if it is there")
    parser.add_argument("--explain", action="store_true", help="print the dense search plan of each user class")
    parser.add_argument("--load-only", action="store_true", help="load (or check) the data and stop before measuring")
    return parser.parse_args()


ARGUMENTS = parse_arguments() if __name__ == "__main__" else None
DATABASE = f"kb_scale_{ARGUMENTS.chunks}" if ARGUMENTS else "kb_scale"
sys.path.insert(0, str(ROOT))
os.environ["KB_VAR_DIR"] = str(BENCH_VAR)
os.environ["DJANGO_SETTINGS_MODULE"] = "kb.settings"
os.environ["KB_EMBEDDED_DATABASE"] = DATABASE
os.environ.pop("DATABASE_URL", None)

from bench.django_setup import django_setup  # noqa: E402

django_setup()

from embedding.encoders import prepare_process_for_questions  # noqa: E402

prepare_process_for_questions()  # as the web process does (kb/asgi.py)

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import OuterRef, Subquery  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from pgvector.django import CosineDistance  # noqa: E402

from extract.chunking import chunk_document  # noqa: E402
from extract.parsing import parse_document  # noqa: E402
from kb.accounts.models import Membership, User  # noqa: E402
from kb.accounts.services import department_create  # noqa: E402
from kb.documents.embedding_models import chunking_tokenizer, passages_embed_for_active_model  # noqa: E402
from kb.documents.models import Chunk, Collection, CollectionGrant, Document, DocumentVersion  # noqa: E402
from kb.documents.selectors import chunks_readable_by, collections_readable_by, permission_filter_of  # noqa: E402
from kb.platform.actors import system_actor  # noqa: E402
from kb.platform.embedded_pg import server_ensure, server_stop  # noqa: E402
from kb.search import selectors  # noqa: E402
from kb.search.selectors import embed_query  # noqa: E402

BASE_DIR = BENCH_VAR / "base"
DEPARTMENTS = 50
DIVISIONS = 7
COMPANY_SHARE = 0.005  # readable by everyone, so it is part of every user's share, the narrow one's too
NARROW_OWN_SHARE = 0.004
NARROW_GRANT_SHARE = 0.001
CONTRACTOR_GRANT_SHARE = 0.005
GRANT_IN_DIVISION = 0.35
GRANT_ACROSS = 0.03
COLLECTIONS_PER_SHARE = 300  # a department with 10% of the chunks has ~30 collections
COPY_BATCH = 20_000


# ---------------------------------------------------------------------------------------------------------------------
# Base passages and queries: real text, real vectors, cached


def base_passages(*, limit: int, seed: int) -> tuple[list[dict], list[dict], np.ndarray]:
    """(pages, passages, vectors): whole pages of the Python docs until `limit` passages, FAQ pages first."""
    meta = {
        "limit": limit,
        "seed": seed,
        "chunk_tokens": settings.KB_CHUNK_TOKENS,
        "overlap": settings.KB_CHUNK_OVERLAP_TOKENS,
    }
    cache, vectors_file = BASE_DIR / "passages.json", BASE_DIR / "vectors.npy"
    if cache.exists() and vectors_file.exists():
        stored = json.loads(cache.read_text())
        if stored["meta"] == meta:
            return stored["pages"], stored["passages"], np.load(vectors_file)
    BASE_DIR.mkdir(parents=True, exist_ok=True)
    faq = sorted((DOCS / "faq").glob("*.html"))
    others = sorted(
        p
        for p in DOCS.rglob("*.html")
        if "_static" not in p.parts and p.parent.name != "faq" and p.stat().st_size > 4000
    )
    others = [others[i] for i in np.random.default_rng(seed).permutation(len(others))]
    pages, passages = [], []
    for page in faq + others:
        if len(passages) >= limit:
            break
        parsed = parse_document(data=page.read_bytes(), filename=page.name)
        drafts = chunk_document(
            document=parsed,
            tokenizer=chunking_tokenizer(),
            max_tokens=settings.KB_CHUNK_TOKENS,
            overlap_tokens=settings.KB_CHUNK_OVERLAP_TOKENS,
        )
        drafts = drafts[: limit - len(passages)]
        if not drafts or (len(drafts) > 60 and page.parent.name != "faq"):
            continue  # one huge reference page would crowd out the rest of the documentation
        pages.append(
            {
                "path": str(page.relative_to(DOCS)),
                "title": parsed.title[:300],
                "start": len(passages),
                "count": len(drafts),
                "size": page.stat().st_size,
            }
        )
        passages += [
            {
                "heading": d.heading[:500],
                "text": d.text,
                "char_start": d.char_start,
                "char_end": d.char_end,
                "token_count": d.token_count,
            }
            for d in drafts
        ]
    print(
        f"embedding {len(passages)} base passages from {len(pages)} pages with the real model "
        f"(once; ~15-27 passages/s on 2 cores) ...",
        flush=True,
    )
    texts = [f"{p['heading']}\n{p['text']}" for p in passages]  # what document_version_ingest embeds
    started, parts = time.perf_counter(), []
    for start in range(0, len(texts), 256):
        parts.append(passages_embed_for_active_model(texts[start : start + 256]))
        print(f"  {start + len(parts[-1])}/{len(texts)} in {time.perf_counter() - started:.0f} s", flush=True)
    vectors = np.vstack(parts).astype(np.float32)
    np.save(vectors_file, vectors)
    cache.write_text(json.dumps({"meta": meta, "pages": pages, "passages": passages}))
    return pages, passages, vectors


def faq_queries() -> tuple[list[str], np.ndarray]:
    """The Python FAQ questions and their vectors from the app's own embed_query, cached."""
    cache, vectors_file = BASE_DIR / "queries.json", BASE_DIR / "query_vectors.npy"
    if cache.exists() and vectors_file.exists():
        return json.loads(cache.read_text()), np.load(vectors_file)
    questions = []
    for page in sorted((DOCS / "faq").glob("*.html")):
        parsed = parse_document(data=page.read_bytes(), filename=page.name)
        questions += [section.heading for section in parsed.sections if section.heading.endswith("?")]
    vectors = np.vstack([embed_query(question) for question in questions]).astype(np.float32)
    np.save(vectors_file, vectors)
    cache.write_text(json.dumps(questions))
    return questions, vectors


class NoiseModel:
    """Gaussian noise with the base vectors' own covariance, scaled to `ratio` times a unit vector's norm."""

    def __init__(self, vectors: np.ndarray, ratio: float):
        covariance = np.cov(vectors.astype(np.float64), rowvar=False)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        eigenvalues = np.clip(eigenvalues, 0.0, None)
        scale = ratio / math.sqrt(eigenvalues.sum())
        self.transform = (eigenvectors * np.sqrt(eigenvalues) * scale).T.astype(np.float32)  # z @ transform

    def copies(self, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noisy = base + rng.standard_normal(base.shape, dtype=np.float32) @ self.transform
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------------------------------
# The organisation: departments, users, collections, grants


def organisation_plan(*, chunks: int, pages: list[dict], seed: int) -> dict:
    """Who owns what and who may read it, in plain numbers (no database)."""
    rng = np.random.default_rng(seed)
    collections = []  # dicts: owner, visibility, size, name, topic (page weights)

    def topic() -> np.ndarray:
        """A department writes about some parts of the documentation more than others (pages sorted by path)."""
        count = len(pages)
        centre, width = rng.uniform(0, count), max(2.0, count * 0.08)
        distance = np.minimum(np.abs(np.arange(count) - centre), count - np.abs(np.arange(count) - centre))
        weights = np.exp(-distance / width) + 0.3 / count * np.exp(-distance / width).sum()
        return weights / weights.sum()

    department_topics = [topic() for _ in range(DEPARTMENTS)]
    shares = np.arange(1, DEPARTMENTS, dtype=float) ** -0.9
    rest = 1.0 - COMPANY_SHARE - NARROW_OWN_SHARE - NARROW_GRANT_SHARE - CONTRACTOR_GRANT_SHARE
    shares = shares / shares.sum() * rest
    order = rng.permutation(DEPARTMENTS - 1) + 1  # which department gets which size
    department_share = {0: NARROW_OWN_SHARE}
    department_share.update({int(department): float(share) for department, share in zip(order, shares)})
    division = {department: (department - 1) % DIVISIONS for department in range(1, DEPARTMENTS)}

    def add(owner: int, share: float, visibility: str, label: str) -> int:
        collections.append(
            {
                "owner": owner,
                "share": share,
                "visibility": visibility,
                "name": f"D{owner:02d} {label} {len(collections):04d}",
            }
        )
        return len(collections) - 1

    for number, share in enumerate((0.002, 0.002, 0.001)):
        add(1, COMPANY_SHARE * share / 0.005, "company", ("Handbook", "Policies", "News")[number])
    add(0, NARROW_OWN_SHARE * 0.7, "department", "Narrow files")
    add(0, NARROW_OWN_SHARE * 0.3, "department", "Narrow notes")
    narrow_granted = add(5, NARROW_GRANT_SHARE, "department", "Shared with narrow")
    contractor_granted = add(10, CONTRACTOR_GRANT_SHARE, "department", "Contractor project")
    grants = [(narrow_granted, 0, None), (contractor_granted, None, "contractor")]
    for department in range(1, DEPARTMENTS):
        share = department_share[department]
        count = max(1, round(share * COLLECTIONS_PER_SHARE))
        for part in rng.dirichlet(np.ones(count)):
            index = add(department, share * float(part), "department", "Files")
            for other in range(1, DEPARTMENTS):
                if other == department:
                    continue
                chance = GRANT_IN_DIVISION if division[other] == division[department] else GRANT_ACROSS
                if rng.random() < chance:
                    grants.append((index, other, None))
    # Integer sizes that add up to exactly `chunks`; every collection holds at least one chunk.
    sizes = np.maximum(1, np.floor(np.array([c["share"] for c in collections]) * chunks).astype(int))
    sizes[int(np.argmax(sizes))] += chunks - int(sizes.sum())
    for collection, size in zip(collections, sizes):
        collection["size"] = int(size)
        collection["topic"] = department_topics[collection["owner"]]
    return {"collections": collections, "grants": grants}


def documents_plan(*, plan: dict, pages: list[dict], seed: int) -> list[tuple[int, int, int, int]]:
    """(collection, page, chunks, copy number) per document: each is a copy of a real page, cut to fit at the end."""
    rng = np.random.default_rng(seed + 1)
    documents, copies = [], {}
    for index, collection in enumerate(plan["collections"]):
        remaining = collection["size"]
        while remaining > 0:
            page = int(rng.choice(len(pages), p=collection["topic"]))
            count = min(pages[page]["count"], remaining)
            copies[(index, page)] = copies.get((index, page), 0) + 1
            documents.append((index, page, count, copies[(index, page)]))
            remaining -= count
    return documents


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def marker_file() -> Path:
    return BENCH_VAR / f"{DATABASE}.loaded.json"


def raw_connection(**options) -> psycopg.Connection:
    """A plain psycopg connection to the same database (for COPY, VACUUM and watching index builds)."""
    parameters = {
        key: value
        for key, value in connection.get_connection_params().items()
        if key in {"dbname", "host", "port", "user", "password"}
    }
    return psycopg.connect(**parameters, **options)


class IndexProgress(threading.Thread):
    """Prints pg_stat_progress_create_index every `every` seconds while an index is being built."""

    def __init__(self, label: str, every: float = 20.0):
        super().__init__(daemon=True)
        self.label, self.every, self.done = label, every, threading.Event()
        self.started_at = time.perf_counter()

    def run(self) -> None:
        with raw_connection(autocommit=True) as watcher:
            while not self.done.wait(self.every):
                row = watcher.execute(
                    "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total "
                    "FROM pg_stat_progress_create_index"
                ).fetchone()
                if row:
                    phase, blocks_done, blocks_total, tuples_done, tuples_total = row
                    print(
                        f"    {self.label}: {phase}; blocks {blocks_done:,}/{blocks_total:,}, tuples "
                        f"{tuples_done:,}/{tuples_total:,}; {time.perf_counter() - self.started_at:.0f} s",
                        flush=True,
                    )


def chunk_indexes() -> list:
    """The chunk table's HNSW and GIN indexes as the model (and so the migrations) define them."""
    return [index for index in Chunk._meta.indexes if index.name in {"chunk_embedding_hnsw", "chunk_search_vector_gin"}]


def existing_index_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'documents_chunk'")
        return {row[0] for row in cursor.fetchall()}


def build_indexes(*, maintenance_work_mem: str, workers: int) -> dict[str, float]:
    timings = {}
    present = existing_index_names()
    with connection.cursor() as cursor:
        cursor.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        cursor.execute(f"SET max_parallel_maintenance_workers = {int(workers)}")
    # The GIN index first: it is the shorter build, and the HNSW build then has the CPUs alone.
    for index in sorted(chunk_indexes(), key=lambda index: index.name != "chunk_search_vector_gin"):
        if index.name in present:
            continue
        print(
            f"  building {index.name} (maintenance_work_mem {maintenance_work_mem}, "
            f"{workers} parallel maintenance workers) ...",
            flush=True,
        )
        progress = IndexProgress(index.name)
        progress.start()
        started = time.perf_counter()
        with connection.schema_editor() as editor:
            editor.add_index(Chunk, index)
        timings[index.name] = time.perf_counter() - started
        progress.done.set()
        print(f"  {index.name}: {timings[index.name]:.1f} s", flush=True)
    return timings


def truncate_everything() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE documents_chunk, documents_documentversion, documents_document, "
            "documents_collectiongrant, documents_collection, accounts_membership, accounts_department, "
            "accounts_user RESTART IDENTITY CASCADE"
        )


def load(
    *, arguments: argparse.Namespace, pages: list[dict], passages: list[dict], vectors: np.ndarray, queries: np.ndarray
) -> dict:
    """Create the organisation and the chunks; returns what the marker records."""
    began = time.perf_counter()
    truncate_everything()
    plan = organisation_plan(chunks=arguments.chunks, pages=pages, seed=arguments.seed)
    documents = documents_plan(plan=plan, pages=pages, seed=arguments.seed)
    print(
        f"loading {arguments.chunks:,} chunks: {len(plan['collections'])} collections, {len(plan['grants'])} "
        f"grants, {len(documents):,} documents ...",
        flush=True,
    )

    # Departments through the service: it also keeps the department tree's closure rows that permissions read (50
    # audit rows do no harm). Everything else through the real models with bulk_create: the services would write
    # rows one by one with an audit row each, far too slow for this volume, and the audit trail is irrelevant here.
    departments = [
        department_create(acting_user=system_actor(), name="D00 Narrow" if n == 0 else f"D{n:02d} Department")
        for n in range(DEPARTMENTS)
    ]
    unusable = make_password(None)
    users = User.objects.bulk_create(
        [User(username=f"d{n:02d}", password=unusable) for n in range(DEPARTMENTS)]
        + [User(username="contractor", password=unusable)]
    )
    Membership.objects.bulk_create([Membership(user=users[n], department=departments[n]) for n in range(DEPARTMENTS)])
    collections = Collection.objects.bulk_create(
        [
            Collection(name=c["name"], owner=departments[c["owner"]], visibility=c["visibility"])
            for c in plan["collections"]
        ]
    )
    CollectionGrant.objects.bulk_create(
        [
            CollectionGrant(
                collection=collections[index],
                department=None if department is None else departments[department],
                user=users[-1] if user else None,
            )
            for index, department, user in plan["grants"]
        ]
    )

    started = time.perf_counter()
    document_rows = Document.objects.bulk_create(
        [
            Document(
                collection=collections[c],
                title=pages[p]["title"],
                original_name=pages[p]["path"].replace("/", "-") + (f" ({copy})" if copy > 1 else ""),
            )
            for c, p, _count, copy in documents
        ],
        batch_size=5000,
    )
    versions = DocumentVersion.objects.bulk_create(
        [
            DocumentVersion(
                document=row,
                number=1,
                file=f"bench/{row.original_name}",
                content_hash=hashlib.sha256(f"{row.pk}".encode()).hexdigest(),
                size_bytes=pages[p]["size"],
                status=DocumentVersion.Status.READY,
                chunk_count=count,
                progress_done=count,
                progress_total=count,
            )
            for row, (_c, p, count, _copy) in zip(document_rows, documents)
        ],
        batch_size=5000,
    )
    Document.objects.update(
        current_version=Subquery(DocumentVersion.objects.filter(document=OuterRef("pk")).values("pk")[:1])
    )
    print(f"  organisation, documents and versions: {time.perf_counter() - started:.1f} s", flush=True)

    # COPY is much faster without the two big indexes: drop them, rebuild them afterwards.
    present = existing_index_names()
    with connection.schema_editor() as editor:
        for index in chunk_indexes():
            if index.name in present:
                editor.remove_index(Chunk, index)

    noise = NoiseModel(vectors, arguments.noise)
    rng = np.random.default_rng(arguments.seed + 2)
    probe = queries[: min(50, len(queries))]  # running unfiltered exact top 10 of some queries, for the diagnostics
    probe_best = np.full((len(probe), 10), -2.0, dtype=np.float32)
    probe_base = np.full((len(probe), 10), -1, dtype=np.int64)
    own_cosines, sibling_cosines = [], []
    columns = (
        "document_id",
        "version_id",
        "collection_id",
        "is_serving",
        "ordinal",
        "heading",
        "text",
        "char_start",
        "char_end",
        "token_count",
        "embedding",
        "hosts",
        "programs",
        "peers",
        "severity_counts",
    )
    types = [
        "int8",
        "int8",
        "int8",
        "bool",
        "int4",
        "varchar",
        "text",
        "int4",
        "int4",
        "int4",
        "vector",
        "varchar[]",
        "varchar[]",
        "varchar[]",
        "jsonb",
    ]
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    empty_json = Jsonb({})
    started, loaded = time.perf_counter(), 0
    with raw_connection() as raw:
        register_vector(raw)
        raw.execute("SET synchronous_commit = off")
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY documents_chunk ({', '.join(columns)}) FROM STDIN WITH (FORMAT BINARY)") as copy,
        ):
            copy.set_types(types)
            for batch_start in range(0, len(documents), 1000):
                batch = range(batch_start, min(batch_start + 1000, len(documents)))
                base_ids = np.concatenate(
                    [
                        np.arange(pages[documents[d][1]]["start"], pages[documents[d][1]]["start"] + documents[d][2])
                        for d in batch
                    ]
                )
                batch_vectors = noise.copies(vectors[base_ids], rng)
                own_cosines.append(np.einsum("ij,ij->i", batch_vectors[:256], vectors[base_ids[:256]]))
                sibling_cosines.append(
                    np.einsum("ij,ij->i", batch_vectors[:256], noise.copies(vectors[base_ids[:256]], rng))
                )
                # Keep the running exact top 10 of the probe queries over all generated vectors.
                scores = probe @ batch_vectors.T
                merged = np.concatenate([probe_best, scores], axis=1)
                merged_base = np.concatenate([probe_base, np.broadcast_to(base_ids, scores.shape)], axis=1)
                keep = np.argpartition(-merged, 9, axis=1)[:, :10]
                probe_best = np.take_along_axis(merged, keep, axis=1)
                probe_base = np.take_along_axis(merged_base, keep, axis=1)
                row = 0
                for d in batch:
                    collection, page, count, _copy = documents[d]
                    document_id, version_id = document_rows[d].pk, versions[d].pk
                    collection_id = collections[collection].pk
                    for ordinal in range(count):
                        passage = passages[pages[page]["start"] + ordinal]
                        copy.write_row(
                            (
                                document_id,
                                version_id,
                                collection_id,
                                True,
                                ordinal,
                                passage["heading"],
                                passage["text"],
                                passage["char_start"],
                                passage["char_end"],
                                passage["token_count"],
                                batch_vectors[row],
                                [],
                                [],
                                [],
                                empty_json,
                            )
                        )
                        row += 1
                previous, loaded = loaded, loaded + row
                if loaded // 100_000 != previous // 100_000 or batch.stop == len(documents):
                    elapsed = time.perf_counter() - started
                    print(
                        f"  {loaded:,}/{arguments.chunks:,} chunks in {elapsed:.0f} s ({loaded / elapsed:,.0f}/s)",
                        flush=True,
                    )
        raw.commit()
    copy_seconds = time.perf_counter() - started
    index_seconds = build_indexes(
        maintenance_work_mem=arguments.maintenance_work_mem, workers=arguments.maintenance_workers
    )
    started = time.perf_counter()
    with raw_connection(autocommit=True) as raw:
        raw.execute("VACUUM (ANALYZE) documents_chunk")
        raw.execute("ANALYZE")
    vacuum_seconds = time.perf_counter() - started

    nearest_base = np.array([[base for _score, base in sorted(zip(-s, b))][0] for s, b in zip(probe_best, probe_base)])
    base_cosines = vectors @ vectors.T
    np.fill_diagonal(base_cosines, -1)
    marker = {
        "chunks": Chunk.objects.count(),
        "parameters": marker_parameters(arguments),
        "collections": len(plan["collections"]),
        "grants": len(plan["grants"]),
        "documents": len(documents),
        "copy_seconds": round(copy_seconds, 1),
        "index_seconds": {k: round(v, 1) for k, v in index_seconds.items()},
        "vacuum_analyze_seconds": round(vacuum_seconds, 1),
        "total_load_seconds": round(time.perf_counter() - began, 1),
        "diagnostics": {
            "copy_to_own_base_cosine_median": round(float(np.median(np.concatenate(own_cosines))), 3),
            "two_copies_of_one_base_cosine_median": round(float(np.median(np.concatenate(sibling_cosines))), 3),
            "base_to_nearest_other_base_cosine_median": round(float(np.median(base_cosines.max(axis=1))), 3),
            "distinct_bases_in_unfiltered_exact_top10_mean": round(
                float(np.mean([len(set(row)) for row in probe_base])), 2
            ),
            "top10_share_from_the_top1_base_mean": round(
                float(np.mean([np.mean(row == top) for row, top in zip(probe_base, nearest_base)])), 2
            ),
        },
    }
    marker_file().write_text(json.dumps(marker, indent=1))
    return marker


def marker_parameters(arguments: argparse.Namespace) -> dict:
    return {
        "chunks": arguments.chunks,
        "base": arguments.base,
        "noise": arguments.noise,
        "seed": arguments.seed,
        "departments": DEPARTMENTS,
    }


def loaded_marker(arguments: argparse.Namespace) -> dict | None:
    if arguments.reload or not marker_file().exists():
        return None
    marker = json.loads(marker_file().read_text())
    if marker.get("parameters") != marker_parameters(arguments) or Chunk.objects.count() < arguments.chunks:
        return None
    return marker


# ---------------------------------------------------------------------------------------------------------------------
# Searching


def dense_search(*, user: User, query_vector: np.ndarray, k: int) -> list[selectors.PassageHit]:
    """The dense part of passages_search_for_user alone, for a vector embedded before."""
    readable = chunks_readable_by(user=user, permission_filter=permission_filter_of(user=user))
    return selectors.hits_of(
        selectors.dense_ranking(readable, query_vector=query_vector, k=k), readable_chunks=readable
    )


def keyword_search(*, user: User, query_text: str, k: int) -> list[selectors.PassageHit]:
    """The keyword part of passages_search_for_user alone."""
    readable = chunks_readable_by(user=user, permission_filter=permission_filter_of(user=user))
    return selectors.hits_of(selectors.keyword_ranking(readable, query_text=query_text, k=k), readable_chunks=readable)


def exact_dense(*, user: User, query_vector: np.ndarray, k: int) -> list[selectors.RankedChunk]:
    """Ground truth: the same readable chunks ordered by cosine distance, without the HNSW index."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")  # HNSW can only be an index scan; bitmap scans stay
            rows = list(
                chunks_readable_by(user=user)
                .annotate(distance=CosineDistance("embedding", query_vector))
                .order_by("distance", "id")
                .values_list("id", "distance")[:k]
            )
    return [selectors.RankedChunk(chunk_id=chunk_id, score=1.0 - float(distance)) for chunk_id, distance in rows]


def naive_dense(*, user: User, query_vector: np.ndarray, k: int, ef_search: int) -> list[int]:
    """Unfiltered HNSW scan of ef_search candidates (no iterative scan), then the permission filter in Python."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.iterative_scan = off")
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [ef_search])
        rows = list(
            Chunk.objects.annotate(distance=CosineDistance("embedding", query_vector))
            .order_by("distance")
            .values_list("id", "collection_id", "is_serving")[:ef_search]
        )
    readable = set(collections_readable_by(user=user).values_list("id", flat=True))
    return [chunk for chunk, collection, serving in rows if serving and collection in readable][:k]


def timed(function, /, **arguments):
    started = time.perf_counter()
    result = function(**arguments)
    return result, (time.perf_counter() - started) * 1000


def recall(found: list[int], truth: list[int]) -> float:
    return len(set(found) & set(truth)) / len(truth) if truth else 1.0


def explain_dense(*, user: User, query_vector: np.ndarray, k: int, verbose: bool) -> str:
    """The plan PostgreSQL runs for chunks_search_for_user, with the selector's own settings."""
    with CaptureQueriesContext(connection) as captured:
        dense_search(user=user, query_vector=query_vector, k=k)
    statements = [query["sql"] for query in captured.captured_queries]
    search = next(sql for sql in statements if "<=>" in sql)
    settings_sql = [sql for sql in statements if "set_config(" in sql]
    with transaction.atomic():
        with connection.cursor() as cursor:
            for sql in settings_sql:
                cursor.execute(sql)
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " + search)
            plan = [row[0] for row in cursor.fetchall()]
    if verbose:
        return "\n".join("      " + line for line in plan)
    uses_hnsw = any("chunk_embedding_hnsw" in line for line in plan)
    nodes = [line.strip().lstrip("-> ").split("  ")[0] for line in plan if "->" in line or line == plan[0]]
    return f"HNSW {'used' if uses_hnsw else 'NOT used'}; " + " / ".join(nodes[:6])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def user_classes(*, k: int) -> dict[str, dict]:
    """broad (the department that reads most), typical (the five around the median), narrow, single-grant."""
    total = Chunk.objects.count()
    visible = {}
    # The departments' users and the contractor; not the system actor (a superuser: it reads everything).
    for user in User.objects.filter(is_superuser=False).order_by("username"):
        visible[user.username] = (user, chunks_readable_by(user=user).count())
    departments = sorted((count, name) for name, (_user, count) in visible.items() if name not in {"d00", "contractor"})
    middle = len(departments) // 2
    classes = {
        "broad": [departments[-1][1]],
        "typical": [name for _count, name in departments[middle - 2 : middle + 3]],
        "narrow (1%)": ["d00"],
        "single-grant": ["contractor"],
    }
    result = {}
    for label, names in classes.items():
        counts = [visible[name][1] for name in names]
        result[label] = {
            "users": [visible[name][0] for name in names],
            "visible": counts,
            "fraction": statistics.fmean(counts) / total,
        }
        if min(counts) < k:
            print(f"  note: a user of class {label} can read fewer than k={k} chunks")
    return result


def measure(*, arguments: argparse.Namespace, questions: list[str], query_vectors: np.ndarray) -> dict:
    k, pool = arguments.k, max(arguments.k * 5, 20)  # the pool passages_search_for_user asks each retriever for
    classes = user_classes(k=k)
    rng = np.random.default_rng(arguments.seed + 3)
    vectors_by_question = dict(zip(questions, query_vectors))
    if settings.KB_RERANKER_MODEL_PATH:
        print("  note: KB_RERANKER_MODEL_PATH is set; hybrid recall then compares reranked lists", flush=True)
    results = {}
    for label, group in classes.items():
        print(
            f"  {label}: {len(group['users'])} user(s), visible {group['fraction']:.2%} "
            f"({', '.join(f'{c:,}' for c in group['visible'])} chunks)",
            flush=True,
        )
        users, visible = group["users"], group["visible"]
        print(
            "    dense plan: "
            + explain_dense(user=users[0], query_vector=query_vectors[0], k=k, verbose=arguments.explain),
            flush=True,
        )
        total = arguments.warmup + arguments.queries
        picks = [
            int(i)
            for i in np.concatenate([rng.permutation(len(questions)) for _ in range(total // len(questions) + 1)])[
                :total
            ]
        ]
        times = {
            name: []
            for name in (
                "hybrid",
                "embed",
                "dense_k",
                "dense_pool",
                "keyword_pool",
                "exact_pool",
                "naive_40",
                "naive_200",
            )
        }
        quality = {name: [] for name in ("dense", "hybrid", "naive_40", "naive_200")}
        short = dict.fromkeys(quality, 0)
        started = time.perf_counter()
        for number, pick in enumerate(picks):
            question, vector = questions[pick], vectors_by_question[questions[pick]]
            user, can_read = users[number % len(users)], visible[number % len(users)]
            # Database calls first, the two that run the model last: torch's OpenMP threads keep spinning for a
            # while after a call, and a database query right after one competes with them for the two cores.
            dense, t_dense = timed(dense_search, user=user, query_vector=vector, k=k)
            _dense_pool, t_dense_pool = timed(dense_search, user=user, query_vector=vector, k=pool)
            keyword, t_keyword = timed(keyword_search, user=user, query_text=question, k=pool)
            exact, t_exact = timed(exact_dense, user=user, query_vector=vector, k=pool)
            naive_40, t_naive_40 = timed(naive_dense, user=user, query_vector=vector, k=k, ef_search=40)
            naive_200, t_naive_200 = timed(naive_dense, user=user, query_vector=vector, k=k, ef_search=200)
            _vector, t_embed = timed(embed_query, text=question)
            hybrid, t_hybrid = timed(
                selectors.passages_search_for_user, user=user, query_text=question, k=k, mode="hybrid"
            )
            if number < arguments.warmup:
                continue
            for name, value in (
                ("hybrid", t_hybrid),
                ("embed", t_embed),
                ("dense_k", t_dense),
                ("dense_pool", t_dense_pool),
                ("keyword_pool", t_keyword),
                ("exact_pool", t_exact),
                ("naive_40", t_naive_40),
                ("naive_200", t_naive_200),
            ):
                times[name].append(value)
            exact_top = [hit.chunk_id for hit in exact[:k]]
            hybrid_exact = [hit.chunk_id for hit in selectors.fused(exact, keyword, k=pool)[:k]]
            found = {
                "dense": [hit.chunk_id for hit in dense],
                "hybrid": [hit.chunk_id for hit in hybrid],
                "naive_40": naive_40,
                "naive_200": naive_200,
            }
            truth = {"dense": exact_top, "hybrid": hybrid_exact, "naive_40": exact_top, "naive_200": exact_top}
            for name in quality:
                quality[name].append(recall(found[name], truth[name]))
                if len(found[name]) < k <= can_read:
                    short[name] += 1
            if (number + 1 - arguments.warmup) % 25 == 0:
                print(
                    f"    {number + 1 - arguments.warmup}/{arguments.queries} queries, "
                    f"{time.perf_counter() - started:.0f} s",
                    flush=True,
                )
        results[label] = {
            "fraction": group["fraction"],
            "users": len(users),
            "queries": arguments.queries,
            "times": times,
            "recall": {name: statistics.fmean(v) for name, v in quality.items()},
            "short": short,
        }
    return results


# ---------------------------------------------------------------------------------------------------------------------
# Report


def machine_facts(*, k: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), (SELECT extversion FROM pg_extension WHERE extname = 'vector')")
        version, pgvector = cursor.fetchone()
        facts = {}
        for name in (
            "shared_buffers",
            "work_mem",
            "effective_cache_size",
            "max_parallel_workers_per_gather",
            "hnsw.ef_search",
            "hnsw.iterative_scan",
            "hnsw.max_scan_tuples",
            "hnsw.scan_mem_multiplier",
            "jit",
        ):
            try:
                cursor.execute(f"SHOW {name}")
                facts[name] = cursor.fetchone()[0]
            except Exception:  # a setting this server does not know
                facts[name] = "?"
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size('documents_chunk')), "
            "pg_size_pretty(pg_relation_size('chunk_embedding_hnsw')), "
            "pg_size_pretty(pg_relation_size('chunk_search_vector_gin'))"
        )
        table, hnsw, gin = cursor.fetchone()
    pool = max(k * 5, 20)
    return [
        f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
        f"database: {version.split(',')[0]}, pgvector {pgvector}; chunk table {table} (HNSW index {hnsw}, GIN {gin})",
        "server settings: " + ", ".join(f"{name}={value}" for name, value in facts.items()),
        f"selector settings: dense search sets hnsw.iterative_scan=relaxed_order, "
        f"hnsw.ef_search=min(1000, max(200, 4k)) and LIMIT max(k, 40); hybrid asks each retriever for {pool}, "
        "keyword search on a second connection beside the dense one",
    ]


def report(*, results: dict, marker: dict, arguments: argparse.Namespace) -> None:
    k = arguments.k
    print()
    for line in machine_facts(k=k):
        print(line)
    diagnostics = marker["diagnostics"]
    print(
        f"data: {marker['chunks']:,} chunks, {marker['documents']:,} documents, {marker['collections']} collections, "
        f"{marker['grants']} grants, 50 departments; noise {arguments.noise}: copy-to-own-base cosine median "
        f"{diagnostics['copy_to_own_base_cosine_median']}, two copies of one base "
        f"{diagnostics.get('two_copies_of_one_base_cosine_median')}, a base's nearest other base "
        f"{diagnostics['base_to_nearest_other_base_cosine_median']}; an unfiltered exact top 10 mixes "
        f"{diagnostics['distinct_bases_in_unfiltered_exact_top10_mean']} base passages on average, "
        f"{diagnostics['top10_share_from_the_top1_base_mean']:.0%} of it copies of the nearest one"
    )
    print(
        f"load: COPY {marker['copy_seconds']} s, indexes {marker['index_seconds']}, VACUUM ANALYZE "
        f"{marker['vacuum_analyze_seconds']} s, total {marker['total_load_seconds']} s"
    )
    every = {
        name: [t for r in results.values() for t in r["times"][name]] for name in next(iter(results.values()))["times"]
    }

    def ms(values: list[float]) -> str:
        return f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f}"

    print()
    print(f"Latency, ms, p50 / p95 (k={k}; each class {arguments.queries} queries after {arguments.warmup} warm-up)")
    print()
    print(
        "| user class | visible | **hybrid** (app call) | embed query | dense k | dense pool | keyword pool "
        "| exact pool | naive ef 40 | naive ef 200 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = [(label, f"{r['fraction']:.1%}", r["times"]) for label, r in results.items()]
    rows.append(("**all**", "", every))
    for label, fraction, times in rows:
        print(
            f"| {label} | {fraction} | **{ms(times['hybrid'])}** | {ms(times['embed'])} | {ms(times['dense_k'])} "
            f"| {ms(times['dense_pool'])} | {ms(times['keyword_pool'])} | {ms(times['exact_pool'])} "
            f"| {ms(times['naive_40'])} | {ms(times['naive_200'])} |"
        )
    print()
    print(
        f"Recall@{k} against exact search under the same filter; queries with fewer than k results (of "
        f"{arguments.queries} per class)"
    )
    print()
    print(
        "| user class | visible | dense recall | **hybrid recall** | dense < k | **hybrid < k** "
        "| naive ef 40: recall, < k | naive ef 200: recall, < k |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, r in results.items():
        recall_, short = r["recall"], r["short"]
        print(
            f"| {label} | {r['fraction']:.1%} | {recall_['dense']:.3f} | **{recall_['hybrid']:.3f}** "
            f"| {short['dense']} | **{short['hybrid']}** | {recall_['naive_40']:.3f}, {short['naive_40']} "
            f"| {recall_['naive_200']:.3f}, {short['naive_200']} |"
        )
    print()
    p95 = percentile(every["hybrid"], 95)
    worst_recall = min(r["recall"]["hybrid"] for r in results.values())
    shorts = sum(r["short"]["hybrid"] for r in results.values())
    print(
        f"targets: hybrid p95 {p95:.1f} ms (<= 50: {'met' if p95 <= 50 else 'NOT met'}); hybrid recall@{k} "
        f"lowest class {worst_recall:.3f} (>= 0.95: {'met' if worst_recall >= 0.95 else 'NOT met'}); "
        f"hybrid < k: {shorts} (0: {'met' if shorts == 0 else 'NOT met'})"
    )


def server_shared_buffers(size: str) -> None:
    """Set the bench server's shared_buffers, restarting it when that changes (the setting needs a restart)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setting::bigint * 8192 = pg_size_bytes(%s) FROM pg_settings WHERE name = 'shared_buffers'", [size]
        )
        if cursor.fetchone()[0]:
            return
        cursor.execute(f"ALTER SYSTEM SET shared_buffers = '{size}'")
    print(f"restarting the bench server with shared_buffers {size} ...", flush=True)
    connection.close()
    server_stop(BENCH_VAR / "pg")
    server_ensure(data_dir=BENCH_VAR / "pg")


def main() -> None:
    arguments = ARGUMENTS
    call_command("migrate", verbosity=0)
    server_shared_buffers(arguments.shared_buffers)
    pages, passages, vectors = base_passages(limit=arguments.base, seed=arguments.seed)
    questions, query_vectors = faq_queries()
    print(
        f"base: {len(passages)} passages from {len(pages)} pages; {len(questions)} FAQ questions; "
        f"database {DATABASE} under {BENCH_VAR}",
        flush=True,
    )
    marker = loaded_marker(arguments)
    if marker is None:
        marker = load(arguments=arguments, pages=pages, passages=passages, vectors=vectors, queries=query_vectors)
    else:
        missing = {index.name for index in chunk_indexes()} - existing_index_names()
        if missing:  # a run stopped during an index build
            build_indexes(maintenance_work_mem=arguments.maintenance_work_mem, workers=arguments.maintenance_workers)
        print(f"reusing the {marker['chunks']:,} chunks loaded before (--reload to load again)", flush=True)
    if arguments.load_only:
        connection.close()
        server_stop(BENCH_VAR / "pg")
        return
    print(f"measuring ... (load average before: {', '.join(f'{v:.1f}' for v in os.getloadavg())})", flush=True)
    results = measure(arguments=arguments, questions=questions, query_vectors=query_vectors)
    print(
        f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (1, 5, 15 min; {os.cpu_count()} CPUs: "
        f"other work on the machine inflates latencies)",
        flush=True,
    )
    report(results=results, marker=marker, arguments=arguments)
    connection.close()
    server_stop(BENCH_VAR / "pg")


if __name__ == "__main__":
    main()
