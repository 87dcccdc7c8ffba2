import functools
import math
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

import numpy as np
from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection, connections, transaction
from django.db.models import F, Q, QuerySet, Sum
from pgvector.django import CosineDistance

from embedding.encoders import question_encoder
from embedding.reranking import cross_encoder
from kb.accounts.models import User
from kb.documents.embedding_models import active_model_path
from kb.documents.models import Chunk
from kb.documents.selectors import chunks_readable_by, permission_filter_of


def embed_query(text: str, *, model_path: str | None = None) -> np.ndarray:
    """With `model_path` (read before, from the database) this touches no database: it can run in a thread."""
    path = active_model_path() if model_path is None else model_path
    return question_encoder(
        path, backend=settings.KB_QUERY_ENCODER, onnx_cache_dir=settings.VAR_DIR / "query-encoders"
    )(text)


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
    # Where the passage sits in its document: for reading order, neighbours and whole-document context.
    ordinal: int = 0
    char_start: int = 0
    char_end: int = 0
    time_start: datetime | None = None  # log windows


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


@dataclass(frozen=True)
class RankedChunk:
    """A chunk's place in one retriever's ranking, before its text and titles are read."""

    chunk_id: int
    score: float


@dataclass(frozen=True)
class FilteredSearch:
    hits: list[PassageHit]
    permission_filter: dict  # what every part of the search was filtered to (permission_filter_of), for the record
    # The question's cosine similarity to its nearest readable passage (None: no dense ranking, or nothing readable):
    # calibrated across questions, unlike fused ranks, so that "the sources do not say" can be decided on it.
    best_similarity: float | None = None


def passages_search_for_user(
    *, user: User, query_text: str, k: int, filters: PassageFilters | None = None, mode: str = "hybrid"
) -> list[PassageHit]:
    """Dense, keyword or both fused by reciprocal rank fusion; every list is permission-filtered in its own SQL."""
    return passages_search_with_filter_for_user(user=user, query_text=query_text, k=k, filters=filters, mode=mode).hits


def passages_search_with_filter_for_user(
    *, user: User, query_text: str, k: int, filters: PassageFilters | None = None, mode: str = "hybrid"
) -> FilteredSearch:
    """passages_search_for_user, and the permission filter it applied: read once, used by every part of it."""
    dense: list[RankedChunk] = []
    keyword: list[RankedChunk] = []
    pool = max(k * 5, 20)
    embedding = None
    if mode in {"dense", "hybrid"}:
        # The question is embedded in a thread (CPU, no database) while this thread reads the permission filter.
        embedding = _embedder().submit(embed_query, query_text, model_path=active_model_path())
    permission_filter = permission_filter_of(user=user)
    readable_chunks = _readable_chunks(user=user, permission_filter=permission_filter, filters=filters)
    keyword_beside = None
    if mode == "hybrid" and not connection.in_atomic_block:
        # Both retrievers at once, each on its own connection, under the same filter. Not inside a transaction:
        # another connection would not see what it sees (its uncommitted rows, its snapshot).
        keyword_beside = _keyword_searcher().submit(
            keyword_ranking_on_own_connection, readable_chunks, query_text=query_text, k=pool
        )
    elif mode in {"keyword", "hybrid"}:
        keyword = keyword_ranking(readable_chunks, query_text=query_text, k=pool)
    if embedding is not None:
        dense = dense_ranking(readable_chunks, query_vector=embedding.result(), k=pool)
    if keyword_beside is not None:
        keyword = keyword_beside.result()
    ranked = {"dense": dense, "keyword": keyword}.get(mode) or reciprocal_rank_fusion([dense, keyword], k=pool)
    if settings.KB_RERANKER_MODEL_PATH:
        hits = reranked(query_text, hits_of(ranked, readable_chunks=readable_chunks))[:k]
    else:
        # Texts and titles are read for the passages shown only, not for every candidate of the pool.
        hits = hits_of(ranked[:k], readable_chunks=readable_chunks)
    return FilteredSearch(
        hits=hits, permission_filter=permission_filter, best_similarity=dense[0].score if dense else None
    )


def reranked(query_text: str, hits: list[PassageHit]) -> list[PassageHit]:
    """The hits in the order of the cross-encoder at KB_RERANKER_MODEL_PATH (a local folder), its scores theirs."""
    scores = cross_encoder(settings.KB_RERANKER_MODEL_PATH).scores(
        query_text, [f"{hit.heading}\n{hit.text}" for hit in hits]
    )
    return sorted(
        (replace(hit, score=score) for hit, score in zip(hits, scores, strict=True)), key=lambda hit: -hit.score
    )


def _readable_chunks(*, user: User, permission_filter: dict, filters: PassageFilters | None) -> QuerySet[Chunk]:
    readable_chunks = chunks_readable_by(user=user, permission_filter=permission_filter)
    return readable_chunks if filters is None else filters.apply(readable_chunks)


def dense_ranking(readable_chunks: QuerySet[Chunk], *, query_vector: np.ndarray, k: int) -> list[RankedChunk]:
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Without iterative scans an HNSW search filters its first ef_search candidates only and can return
            # fewer than k rows although k readable ones exist. A wider candidate list than pgvector's 40 keeps
            # recall up when many visited rows are filtered out or are dead versions not yet vacuumed; it costs
            # little at our k. One round trip for both settings.
            cursor.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', %s, true)",
                [str(min(1000, max(100, 2 * k)))],
            )
        # relaxed_order may return neighbours slightly out of order: the rows are ordered exactly here
        # (pgvector's documented pattern for iterative scans). A small k takes more rows, so that a nearer one just
        # past the limit is not cut off; a candidate pool (k * 5 for fusion) is that margin already, and every
        # extra row costs the filtered index scan a walk to find it (BENCHMARKS.md, search at scale).
        rows = list(
            readable_chunks.annotate(distance=CosineDistance("embedding", query_vector))
            .order_by("distance")
            .values_list("id", "distance")[: max(k, 40)]
        )
    rows.sort(key=lambda row: row[1])
    return [RankedChunk(chunk_id=chunk_id, score=1.0 - float(distance)) for chunk_id, distance in rows[:k]]


def keyword_ranking(readable_chunks: QuerySet[Chunk], *, query_text: str, k: int) -> list[RankedChunk]:
    query = keyword_query(query_text)
    if query is None:
        return []
    candidates, ranked_by = query
    rows = (
        readable_chunks.filter(search_vector=candidates)
        .annotate(rank=SearchRank(F("search_vector"), ranked_by))
        .order_by("-rank", "id")
        .values_list("id", "rank")[:k]
    )
    return [RankedChunk(chunk_id=chunk_id, score=float(rank)) for chunk_id, rank in rows]


Ranked = TypeVar("Ranked", RankedChunk, PassageHit)


def reciprocal_rank_fusion(rankings: list[list[Ranked]], *, k: int) -> list[Ranked]:
    """Sum of 1 / (KB_RRF_K + rank) over the rankings a passage appears in."""
    constant = settings.KB_RRF_K
    fused: dict[int, float] = {}
    hits: dict[int, Ranked] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (constant + rank)
            hits.setdefault(hit.chunk_id, hit)
    best = sorted(fused, key=lambda chunk_id: (-fused[chunk_id], chunk_id))[:k]
    return [replace(hits[chunk_id], score=fused[chunk_id]) for chunk_id in best]


_WORD = re.compile(r"[^\W_]+")


@functools.cache
def _embedder() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed-query")


@functools.cache
def _keyword_searcher() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="keyword-search")


_keyword_connections: list = []  # the searcher threads' own connections (their Django DatabaseWrapper)
_keyword_connections_lock = threading.Lock()


def keyword_ranking_on_own_connection(
    readable_chunks: QuerySet[Chunk], *, query_text: str, k: int
) -> list[RankedChunk]:
    """_keyword_ranking in a searcher thread. Its connection stays open between searches (opening one costs
    about as much as the search: 4 ms here); one that broke is replaced before it is used again."""
    own = connections[readable_chunks.db]
    with _keyword_connections_lock:
        if own not in _keyword_connections:
            own.inc_thread_sharing()  # so that keyword_connections_close may close it from another thread
            _keyword_connections.append(own)
    if own.connection is not None and own.errors_occurred and not own.is_usable():
        own.close()
    return keyword_ranking(readable_chunks, query_text=query_text, k=k)


def keyword_connections_close() -> None:
    """Close the searcher threads' connections (they reopen when next used): before a database is dropped."""
    with _keyword_connections_lock:
        for wrapper in _keyword_connections:
            wrapper.close()


def keyword_query(query_text: str) -> tuple[SearchQuery, SearchQuery] | None:
    """What keyword candidates must match, and what ranks them: all the question's stemmed words.

    PostgreSQL ranks every candidate, so candidates must be rare: a word found in half the passages ("python",
    "use") would have it rank half the table. Candidates hold one of the question's words found in at most
    KB_KEYWORD_MAX_WORD_SHARE of all passages; when every word is that common, they hold all the words together,
    if that is expected to be as rare (the product of the words' shares); otherwise keyword search has nothing to
    add to the dense search and returns nothing ("What is Python?"). Word shares come from the statistics ANALYZE
    keeps for the tsvector column, so this costs no scan.
    """
    words = " ".join(_WORD.findall(query_text.lower()))
    if not words:
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s)) ORDER BY lexeme", [words])
        lexemes = [row[0] for row in cursor.fetchall()]
    if not lexemes:
        return None
    shares = _lexeme_shares()
    max_share = settings.KB_KEYWORD_MAX_WORD_SHARE
    distinctive = [lexeme for lexeme in lexemes if shares.get(lexeme, 0.0) <= max_share]
    if distinctive:
        return _tsquery(distinctive, " | "), _tsquery(lexemes, " | ")
    if math.prod(shares[lexeme] for lexeme in lexemes) <= max_share:
        return _tsquery(lexemes, " & "), _tsquery(lexemes, " | ")
    return None


def _tsquery(lexemes: list[str], operator: str) -> SearchQuery:
    return SearchQuery(
        operator.join("'{}'".format(lexeme.replace("'", "''")) for lexeme in lexemes),
        search_type="raw",
        config="simple",
    )


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
            "WHERE tablename = %s AND attname = 'search_vector'",
            [Chunk._meta.db_table],
        )
        row = cursor.fetchone()
    # most_common_elem_freqs ends with three extra figures (minimum, maximum, share of nulls).
    shares = dict(zip(row[0], row[1])) if row and row[0] else {}
    _lexeme_shares_cache = (time.monotonic(), shares)
    return shares


def hits_of(ranked: list[RankedChunk], *, readable_chunks: QuerySet[Chunk]) -> list[PassageHit]:
    """The ranked chunks with their texts, headings and titles, read in one query for these rows only.

    Through the same readable set the ranking used: a chunk removed or moved out of reach meanwhile is left out.
    """
    rows = {
        row[0]: row
        for row in readable_chunks.filter(pk__in=[chunk.chunk_id for chunk in ranked]).values_list(*_HIT_COLUMNS)
    }
    return [_hit_of(rows[chunk.chunk_id], score=chunk.score) for chunk in ranked if chunk.chunk_id in rows]


_HIT_COLUMNS = (
    "id",
    "document_id",
    "version_id",
    "heading",
    "text",
    "document__title",
    "collection__name",
    "ordinal",
    "char_start",
    "char_end",
    "time_start",
)


def _hit_of(row: tuple, *, score: float) -> PassageHit:
    chunk_id, document_id, version_id, heading, text, title, collection_name, ordinal, start, end, time_start = row
    return PassageHit(
        chunk_id=chunk_id,
        document_id=document_id,
        version_id=version_id,
        document_title=title,
        collection_name=collection_name,
        heading=heading,
        text=text,
        score=score,
        ordinal=ordinal,
        char_start=start,
        char_end=end,
        time_start=time_start,
    )


@dataclass(frozen=True)
class DocumentPassages:
    by_document: dict[int, list[PassageHit]]  # in reading order
    whole: frozenset[int]  # the documents whose passages are all there


def document_passages_for_user(
    *, user: User, hits: Sequence[PassageHit], whole_up_to_tokens: int, permission_filter: dict
) -> DocumentPassages:
    """For each document among the hits, its readable passages in reading order: all of them where the document's
    passages hold at most `whole_up_to_tokens` (as the chunker counted), else the hits' neighbours only.

    Through the same readable set (and permission filter) as the search that found the hits.
    """
    readable = chunks_readable_by(user=user, permission_filter=permission_filter)
    document_ids = {hit.document_id for hit in hits}
    sizes = dict(
        readable.filter(document_id__in=document_ids)
        .values("document_id")
        .annotate(tokens=Sum("token_count"))
        .values_list("document_id", "tokens")
    )
    whole_ids = [document_id for document_id, tokens in sizes.items() if tokens <= whole_up_to_tokens]
    around = Q(document_id__in=whole_ids)
    for hit in hits:
        if hit.document_id not in whole_ids:
            around |= Q(version_id=hit.version_id, ordinal__in=(hit.ordinal - 1, hit.ordinal + 1))
    passages: dict[int, list[PassageHit]] = {}
    for row in readable.filter(around).order_by("document_id", "ordinal").values_list(*_HIT_COLUMNS):
        hit = _hit_of(row, score=0.0)
        passages.setdefault(hit.document_id, []).append(hit)
    return DocumentPassages(by_document=passages, whole=frozenset(whole_ids))
