import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import F, Q, QuerySet
from pgvector.django import CosineDistance

from kb.accounts.models import User
from kb.documents.models import Chunk, Document
from kb.documents.selectors import chunks_readable_by
from kb.search.embeddings import active_model_path, embed_query
from kb.search.reranking import configured_reranker


@dataclass(frozen=True)
class PassageHit:
    chunk_id: int
    document_id: int
    version_id: int
    document_title: str
    collection_name: str
    heading: str
    text: str
    score: float


@dataclass(frozen=True, kw_only=True)
class PassageFilters:
    """Narrowing a search by collection and file type, and log windows by time range, host, peer and severity."""

    collection_ids: tuple[int, ...] = ()
    extensions: tuple[str, ...] = ()  # ".pdf", ".log", ...
    time_from: datetime | None = None
    time_to: datetime | None = None
    host: str | None = None
    peer: str | None = None
    severities: tuple[str, ...] = ()

    def apply(self, chunks: QuerySet[Chunk]) -> QuerySet[Chunk]:
        if self.collection_ids:
            chunks = chunks.filter(document__collection_id__in=self.collection_ids)
        if self.extensions:
            by_extension = Q()
            for extension in self.extensions:
                by_extension |= Q(document__original_name__iendswith=extension)
            chunks = chunks.filter(by_extension)
        if self.time_from is not None:
            chunks = chunks.filter(time_end__gte=self.time_from)
        if self.time_to is not None:
            chunks = chunks.filter(time_start__lte=self.time_to)
        if self.host:
            chunks = chunks.filter(hosts__contains=[self.host])
        if self.peer:
            chunks = chunks.filter(peers__contains=[self.peer])
        if self.severities:
            chunks = chunks.filter(severity_counts__has_any_keys=list(self.severities))
        return chunks


def chunks_search_for_user(
    *, user: User, query_vector: np.ndarray, k: int, filters: PassageFilters | None = None
) -> list[PassageHit]:
    """The k passages nearest to the query among those the user may read, permission filter inside the SQL."""
    readable_chunks = chunks_readable_by(user=user)
    if filters is not None:
        readable_chunks = filters.apply(readable_chunks)
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Without iterative scans an HNSW search filters its first ef_search candidates only and can return
            # fewer than k rows although k readable ones exist.
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            # A wider candidate list than pgvector's 40 keeps recall up when many visited rows are filtered out or
            # are dead versions not yet vacuumed; it costs little at our k.
            cursor.execute("SET LOCAL hnsw.ef_search = %s", [min(1000, max(100, 2 * k))])
        # relaxed_order may return neighbours out of order, so a LIMIT of k could cut off a nearer one: take more,
        # then order them exactly (pgvector's documented pattern for iterative scans).
        rows = list(
            readable_chunks.annotate(distance=CosineDistance("embedding", query_vector))
            .order_by("distance")
            .values(*_HIT_FIELDS, "distance")[: max(2 * k, 40)]
        )
    rows = sorted(rows, key=lambda row: row["distance"])[:k]
    return hits_from_rows(rows, [1.0 - float(row["distance"]) for row in rows])


def chunks_keyword_search_for_user(
    *, user: User, query_text: str, k: int, filters: PassageFilters | None = None
) -> list[PassageHit]:
    """Full-text search (any of the question's words, ranked by weighted frequency) among what the user may read."""
    lexemes, distinctive = _question_lexemes(query_text)
    if not lexemes:
        return []
    # OR of the words: a question rarely repeats a passage's every word. ts_rank, not ts_rank_cd: on the Python FAQ
    # evaluation (bench/retrieval_eval.py) cover density ranked OR-queries far worse (MRR@10 0.42 against 0.83).
    # Candidates must hold one of the question's distinctive words; every word counts in the ranking.
    ranked_by = _any_of(lexemes)
    readable_chunks = chunks_readable_by(user=user)
    if filters is not None:
        readable_chunks = filters.apply(readable_chunks)
    rows = list(
        readable_chunks.filter(search_vector=_any_of(distinctive))
        .annotate(rank=SearchRank(F("search_vector"), ranked_by))
        .order_by("-rank", "id")
        .values(*_HIT_FIELDS, "rank")[:k]
    )
    return hits_from_rows(rows, [float(row["rank"]) for row in rows])


def passages_search_for_user(
    *, user: User, query_text: str, k: int, filters: PassageFilters | None = None, mode: str = "hybrid"
) -> list[PassageHit]:
    """Dense, keyword or both fused by reciprocal rank fusion; every list is permission-filtered in its own SQL."""
    dense = keyword = []
    pool = max(k * 5, 20)
    embedding = None
    if mode in {"dense", "hybrid"}:
        # The question is embedded in a thread (CPU, no database) while this thread's connection runs the keyword
        # search: the two overlap on a multi-core machine.
        embedding = _EMBEDDER.submit(embed_query, query_text, model_path=active_model_path())
    if mode in {"keyword", "hybrid"}:
        keyword = chunks_keyword_search_for_user(user=user, query_text=query_text, k=pool, filters=filters)
    if embedding is not None:
        dense = chunks_search_for_user(user=user, query_vector=embedding.result(), k=pool, filters=filters)
    candidates = {"dense": dense, "keyword": keyword}.get(mode) or reciprocal_rank_fusion([dense, keyword], k=pool)
    reranker = configured_reranker()
    if reranker is not None:
        candidates = reranker.rerank(query_text, candidates)
    return candidates[:k]


def reciprocal_rank_fusion(rankings: list[list[PassageHit]], *, k: int) -> list[PassageHit]:
    """Sum of 1 / (KB_RRF_K + rank) over the rankings a passage appears in."""
    constant = settings.KB_RRF_K
    fused: dict[int, float] = {}
    hits: dict[int, PassageHit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (constant + rank)
            hits.setdefault(hit.chunk_id, hit)
    best = sorted(fused, key=lambda chunk_id: (-fused[chunk_id], chunk_id))[:k]
    return [replace(hits[chunk_id], score=fused[chunk_id]) for chunk_id in best]


_WORD = re.compile(r"[^\W_]+")
_EMBEDDER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed-query")


def _question_lexemes(query_text: str) -> tuple[list[str], list[str]]:
    """The question's stemmed words, and those of them found in at most KB_KEYWORD_MAX_WORD_SHARE of all passages.

    A word found in half the passages ("python", "use") would make PostgreSQL rank every passage that has it: only
    passages with a distinctive word are candidates, ranked by all the words. Word shares come from the statistics
    ANALYZE keeps for the tsvector column, so this costs no scan. When every word is common, the rarest one decides.
    """
    words = " ".join(_WORD.findall(query_text.lower()))
    if not words:
        return [], []
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s)) ORDER BY lexeme", [words])
        lexemes = [row[0] for row in cursor.fetchall()]
    shares = _lexeme_shares()
    distinctive = [lexeme for lexeme in lexemes if shares.get(lexeme, 0.0) <= settings.KB_KEYWORD_MAX_WORD_SHARE]
    if lexemes and not distinctive:
        distinctive = [min(lexemes, key=lambda lexeme: shares.get(lexeme, 0.0))]
    return lexemes, distinctive


def _any_of(lexemes: list[str]) -> SearchQuery:
    return SearchQuery(" | ".join("'{}'".format(lexeme.replace("'", "''")) for lexeme in lexemes),
                       search_type="raw", config="simple")


_LEXEME_SHARES_TTL = 300.0
_lexeme_shares_cache: tuple[float, dict[str, float]] = (float("-inf"), {})


def _lexeme_shares() -> dict[str, float]:
    """Share of passages containing each common lexeme, from pg_stats; refreshed every few minutes."""
    global _lexeme_shares_cache
    read_at, shares = _lexeme_shares_cache
    if time.monotonic() - read_at < _LEXEME_SHARES_TTL:
        return shares
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
            "WHERE tablename = %s AND attname = 'search_vector'", [Chunk._meta.db_table])
        row = cursor.fetchone()
    # most_common_elem_freqs ends with three extra figures (minimum, maximum, share of nulls).
    shares = dict(zip(row[0], row[1])) if row and row[0] else {}
    _lexeme_shares_cache = (time.monotonic(), shares)
    return shares
# The searches read chunk columns only; titles and collection names are joined for the few rows returned, not for
# every row a search considers (for a small readable set, that is every readable chunk).
_HIT_FIELDS = ("id", "document_id", "version_id", "heading", "text")


def hits_from_rows(rows: list[dict], scores: list[float]) -> list[PassageHit]:
    documents = {
        pk: (title, collection_name)
        for pk, title, collection_name in Document.objects.filter(pk__in={row["document_id"] for row in rows})
        .values_list("pk", "title", "collection__name")
    }
    return [
        PassageHit(
            chunk_id=row["id"],
            document_id=row["document_id"],
            version_id=row["version_id"],
            document_title=documents[row["document_id"]][0],
            collection_name=documents[row["document_id"]][1],
            heading=row["heading"],
            text=row["text"],
            score=score,
        )
        for row, score in zip(rows, scores)
    ]
