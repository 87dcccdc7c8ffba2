import functools
import math
import operator
import re
import statistics
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
from django.db.models import ExpressionWrapper, F, FloatField, Q, QuerySet, Sum, Value
from pgvector.django import CosineDistance

from embedding.encoders import question_encoder
from embedding.reranking import cross_encoder
from kb.accounts.models import User
from kb.audit.ledger import RecordedPassage
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

    def recorded(self, *, sent_to_model: bool) -> RecordedPassage:
        """The passage as the audit trail keeps it with its query record."""
        return RecordedPassage(
            chunk_id=self.chunk_id,
            document_id=self.document_id,
            version_id=self.version_id,
            score=self.score,
            sent_to_model=sent_to_model,
            text=self.text,
        )


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


def close_enough_to_answer(best_similarity: float | None, *, threshold: float) -> bool:
    """Whether the nearest readable passage is similar enough to the question to answer from: below the threshold
    (KB_ABSTAIN_BELOW_SIMILARITY) the answer is "not in the sources". The ask flow and the evaluation's abstention
    scores decide on this one rule."""
    return (best_similarity or 0.0) >= threshold


def passages_search_for_user(
    *, user: User, query_text: str, k: int, filters: PassageFilters | None = None, mode: str = "hybrid"
) -> list[PassageHit]:
    """Dense, keyword or both fused (`fused`); every list is permission-filtered in its own SQL."""
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
    ranked = {"dense": dense, "keyword": keyword}.get(mode) or fused(dense, keyword, k=pool)
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
            # little at our k, and in a hybrid search the dense walk runs beside the longer keyword search. 200 for
            # a pool of 50 rather than 100: a reader of a fifth of a million passages got recall@10 0.943 with 100,
            # 0.974 with 200, at a lower hybrid p95 (BENCHMARKS.md, search at scale). One round trip for both.
            cursor.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', %s, true)",
                [str(min(1000, max(200, 4 * k)))],
            )
        # relaxed_order may return neighbours slightly out of order: the rows are ordered exactly here
        # (pgvector's documented pattern for iterative scans). A small k takes more rows, so that a nearer one just
        # past the limit is not cut off; a candidate pool (k * 5 for fusion) is that margin already, and every
        # extra row costs the filtered index scan a walk to find it (BENCHMARKS.md, search at scale).
        nearest = (
            readable_chunks.annotate(distance=CosineDistance("embedding", query_vector))
            .order_by("distance")
            .values_list("id", "distance")[: max(k, 40)]
        )
        rows = list(nearest)
        if len(rows) < max(k, 40):
            # Either the reader has no more rows, or the index walk stopped at hnsw.max_scan_tuples before it found
            # them (behind many dead entries that autovacuum has not cleared yet). An exact scan of the readable
            # rows settles it; it runs only when the list came back short, which for a reader of few rows is cheap.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('enable_indexscan'), set_config('enable_indexscan', 'off', true)"
                )
                (index_scans, _) = cursor.fetchone()
                rows = list(nearest.all())  # evaluated anew, not the short list it holds
                # A savepoint's release keeps a local setting until the enclosing transaction ends: put it back.
                cursor.execute("SELECT set_config('enable_indexscan', %s, true)", [index_scans])
    rows.sort(key=lambda row: row[1])
    return [RankedChunk(chunk_id=chunk_id, score=1.0 - float(distance)) for chunk_id, distance in rows[:k]]


def keyword_ranking(readable_chunks: QuerySet[Chunk], *, query_text: str, k: int) -> list[RankedChunk]:
    """Passages holding the question's words, ranked by their BM25-style score (keyword_query): each word's idf times
    its saturating term frequency, summed. The candidates come from the GIN index on search_vector; the score is
    computed on them alone, one ts_rank per word (about 0.4 µs a row for ten words: BENCHMARKS.md, issue 17)."""
    query = keyword_query(query_text)
    if query is None:
        return []
    rows = (
        readable_chunks.filter(search_vector=query.candidates)
        .annotate(rank=query.rank())
        .order_by("-rank", "id")
        .values_list("id", "rank")[:k]
    )
    return [RankedChunk(chunk_id=chunk_id, score=float(rank)) for chunk_id, rank in rows]


Ranked = TypeVar("Ranked", RankedChunk, PassageHit)


def fused(dense: list[Ranked], keyword: list[Ranked], *, k: int) -> list[Ranked]:
    """The dense and keyword rankings made one, as KB_FUSION says: "zscore" or "minmax" (score_fusion), or "rrf"."""
    if settings.KB_FUSION == "rrf":
        return reciprocal_rank_fusion([dense, keyword], k=k)
    return score_fusion(dense, keyword, dense_weight=settings.KB_FUSION_DENSE_WEIGHT, k=k, scaling=settings.KB_FUSION)


def score_fusion(
    dense: list[Ranked], keyword: list[Ranked], *, dense_weight: float, k: int, scaling: str = "zscore"
) -> list[Ranked]:
    """Each ranking's scores put on one scale over its own list, then summed with weights `dense_weight` and
    1 - `dense_weight`; a passage missing from a list counts as that list's lowest.

    Unlike reciprocal rank fusion this keeps how far apart the scores are: a passage far ahead in one ranking stays
    ahead, where ranks would make it a near-tie with the next ("convex combination" of Bruch et al., 2023, An
    Analysis of Fusion Functions for Hybrid Retrieval). `scaling` "zscore": standard deviations from the list's mean
    (OpenSearch's z_score normalisation), so that a passage counts by how far it stands out of its own list;
    "minmax": scaled to 0..1, where the list's best is 1 however close the runner-up (cosine similarities of a
    pool often lie within a few hundredths). Chosen on the four evaluation sets (BENCHMARKS.md, issue 17).
    """
    hits: dict[int, Ranked] = {}
    for hit in (*dense, *keyword):
        hits.setdefault(hit.chunk_id, hit)
    fused_scores = dict.fromkeys(hits, 0.0)
    for weight, ranking in ((dense_weight, dense), (1.0 - dense_weight, keyword)):
        if not ranking:
            continue
        scaled = dict(zip((hit.chunk_id for hit in ranking), _scaled([hit.score for hit in ranking], scaling)))
        lowest = min(scaled.values())
        for chunk_id in fused_scores:
            fused_scores[chunk_id] += weight * scaled.get(chunk_id, lowest)
    best = sorted(fused_scores, key=lambda chunk_id: (-fused_scores[chunk_id], chunk_id))[:k]
    return [replace(hits[chunk_id], score=fused_scores[chunk_id]) for chunk_id in best]


def _scaled(scores: list[float], scaling: str) -> list[float]:
    if scaling == "minmax":
        high, low = max(scores), min(scores)
        return [(score - low) / (high - low) if high > low else 1.0 for score in scores]
    mean = statistics.fmean(scores)
    deviation = statistics.pstdev(scores, mean) or 1.0
    return [(score - mean) / deviation for score in scores]


def reciprocal_rank_fusion(rankings: list[list[Ranked]], *, k: int) -> list[Ranked]:
    """Sum of 1 / (KB_RRF_K + rank) over the rankings a passage appears in."""
    constant = settings.KB_RRF_K
    fused_scores: dict[int, float] = {}
    hits: dict[int, Ranked] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            fused_scores[hit.chunk_id] = fused_scores.get(hit.chunk_id, 0.0) + 1.0 / (constant + rank)
            hits.setdefault(hit.chunk_id, hit)
    best = sorted(fused_scores, key=lambda chunk_id: (-fused_scores[chunk_id], chunk_id))[:k]
    return [replace(hits[chunk_id], score=fused_scores[chunk_id]) for chunk_id in best]


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


@dataclass(frozen=True)
class KeywordQuery:
    """What keyword candidates must match (through the GIN index), and the weight of each of the question's words."""

    candidates: SearchQuery
    weights: dict[str, float]  # lexeme: its idf

    def rank(self) -> ExpressionWrapper:
        """Σ idf(word) × ts_rank(passage, word): ts_rank of one word grows with its occurrences and saturates
        (0.61, 0.76, 0.83, ... → 1), as BM25's term frequency does. Headings (A) and text (B) weigh alike."""
        terms = [
            SearchRank(F("search_vector"), _tsquery([lexeme], ""), weights=[1.0, 1.0, 1.0, 1.0]) * Value(idf)
            for lexeme, idf in self.weights.items()
        ]
        return ExpressionWrapper(functools.reduce(operator.add, terms), output_field=FloatField())


def keyword_query(query_text: str) -> KeywordQuery | None:
    """The question's words (stemmed, stop words dropped; compound ones such as "192.0.2.7" also whole), each weighted
    by its BM25 idf, and the candidates to rank.

    Every word counts in the ranking, weighted by how rare it is, so a natural question's common words ("use",
    "file") help a little and its rare ones a lot. Word shares come from the statistics ANALYZE keeps for the
    tsvector column (no scan); a word ANALYZE did not list is rarer than all it listed: half the least common
    listed share is assumed.

    PostgreSQL scores every candidate, so candidates are bounded: they hold one of the rarest words, taken rarest
    first while the passages holding them are expected to number at most KB_KEYWORD_MAX_CANDIDATES. When even the
    rarest word is too common, they hold all the words together, if that is expected to be as rare (the product of
    the words' shares); otherwise keyword search has nothing to add to the dense search and returns nothing ("What
    is Python?" over a million Python passages). Below that many passages in all, every word is a candidate.
    """
    words = " ".join(_WORD.findall(query_text.lower()))
    if not words:
        return None
    with connection.cursor() as cursor:
        # Its words as the passages' search_vector has them (kb.documents.models.Chunk): stemmed, and compound ones
        # ("192.0.2.7") whole as well.
        cursor.execute(
            "SELECT lexeme FROM unnest(to_tsvector('english', %s)) UNION SELECT unnest(kb_compound_words(%s)) "
            "ORDER BY 1",
            [words, query_text],
        )
        lexemes = [row[0] for row in cursor.fetchall()]
    if not lexemes:
        return None
    statistics = _lexeme_statistics()
    shares = {lexeme: statistics.share(lexeme) for lexeme in lexemes}
    weights = {lexeme: bm25_idf(shares[lexeme], passages=statistics.passages) for lexeme in lexemes}
    limit = settings.KB_KEYWORD_MAX_CANDIDATES
    candidates: list[str] = []
    expected = 0.0
    for lexeme in sorted(lexemes, key=lambda lexeme: (shares[lexeme], lexeme)):
        expected += shares[lexeme] * statistics.passages
        if expected > limit:
            break
        candidates.append(lexeme)
    if candidates:
        return KeywordQuery(candidates=_tsquery(sorted(candidates), " | "), weights=weights)
    if math.prod(shares.values()) * statistics.passages <= limit:
        return KeywordQuery(candidates=_tsquery(lexemes, " & "), weights=weights)
    return None


def bm25_idf(share: float, *, passages: float) -> float:
    """BM25's inverse document frequency (Robertson and Zaragoza's, +1 inside the log: never negative) of a word
    found in `share` of `passages` passages."""
    holding = share * passages
    return math.log(1.0 + (passages - holding + 0.5) / (holding + 0.5))


class _LexemeQuery(SearchQuery):
    """A tsquery of lexemes as written (a cast: no parser, no dictionary), so that "utf-16" stays one lexeme where
    to_tsquery would make it the phrase 'utf' <-> '-16'."""

    template = "(%(expressions)s)::tsquery"


def _tsquery(lexemes: list[str], joined_by: str) -> SearchQuery:
    quoted = ("'{}'".format(lexeme.replace("\\", "\\\\").replace("'", "''")) for lexeme in lexemes)
    return _LexemeQuery(joined_by.join(quoted), search_type="raw")


@dataclass(frozen=True)
class LexemeStatistics:
    """What ANALYZE saw of the chunk table's words: the share of passages holding each common one."""

    shares: dict[str, float]
    least_listed_share: float  # the smallest share listed: every word not listed is rarer
    passages: float  # the table's estimated row count

    def share(self, lexeme: str) -> float:
        return self.shares.get(lexeme, self.least_listed_share / 2)


_LEXEME_STATISTICS_TTL = 300.0
_lexeme_statistics_cache: tuple[float, LexemeStatistics] = (float("-inf"), LexemeStatistics({}, 0.0, 0.0))


def _lexeme_statistics() -> LexemeStatistics:
    """From pg_stats and pg_class; refreshed every few minutes. Before the first ANALYZE: no shares, every word
    weighs the same and every word is a candidate."""
    global _lexeme_statistics_cache
    read_at, statistics = _lexeme_statistics_cache
    if time.monotonic() - read_at < _LEXEME_STATISTICS_TTL:
        return statistics
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples "
            "FROM pg_class c LEFT JOIN pg_stats s ON s.tablename = c.relname AND s.attname = 'search_vector' "
            "WHERE c.oid = %s::regclass",
            [Chunk._meta.db_table],
        )
        row = cursor.fetchone()
    elements, frequencies, passages = row if row else (None, None, 0.0)
    # most_common_elem_freqs ends with three extra figures (minimum, maximum, share of nulls).
    statistics = LexemeStatistics(
        shares=dict(zip(elements, frequencies)) if elements else {},
        least_listed_share=frequencies[-3] if elements else 0.0,
        passages=max(float(passages or 0.0), 0.0),  # -1 before the first VACUUM or ANALYZE
    )
    _lexeme_statistics_cache = (time.monotonic(), statistics)
    return statistics


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
