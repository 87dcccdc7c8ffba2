from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db import connection, transaction
from django.db.models import QuerySet
from pgvector.django import CosineDistance

from kb.accounts.models import User
from kb.documents.models import Chunk
from kb.documents.selectors import chunks_readable_by


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
    """Narrowing a search to log windows by time range (overlap), host, remote peer and severity."""

    time_from: datetime | None = None
    time_to: datetime | None = None
    host: str | None = None
    peer: str | None = None
    severities: tuple[str, ...] = ()

    def apply(self, chunks: QuerySet[Chunk]) -> QuerySet[Chunk]:
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
        rows = list(
            readable_chunks.annotate(distance=CosineDistance("embedding", query_vector))
            .order_by("distance")
            .values("id", "document_id", "version_id", "document__title", "document__collection__name", "heading", "text",
                    "distance")[:k]
        )
    # relaxed_order may return neighbours slightly out of order.
    rows.sort(key=lambda row: row["distance"])
    return [
        PassageHit(
            chunk_id=row["id"],
            document_id=row["document_id"],
            version_id=row["version_id"],
            document_title=row["document__title"],
            collection_name=row["document__collection__name"],
            heading=row["heading"],
            text=row["text"],
            score=1.0 - float(row["distance"]),
        )
        for row in rows
    ]
