"""An optional last stage: a cross-encoder reads the question with each candidate passage and reorders them."""

import functools
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from django.conf import settings

if TYPE_CHECKING:
    from kb.search.selectors import PassageHit


class Reranker(Protocol):
    def rerank(self, query: str, hits: list["PassageHit"]) -> list["PassageHit"]: ...


class CrossEncoderReranker:
    def __init__(self, model_path: str) -> None:
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(model_path, device="cpu", local_files_only=True)

    def rerank(self, query: str, hits: list["PassageHit"]) -> list["PassageHit"]:
        if not hits:
            return hits
        scores = self._model.predict([(query, f"{hit.heading}\n{hit.text}") for hit in hits], show_progress_bar=False)
        scored = [replace(hit, score=float(score)) for hit, score in zip(hits, scores, strict=True)]
        return sorted(scored, key=lambda hit: -hit.score)


@functools.lru_cache(maxsize=2)
def _cross_encoder(model_path: str) -> CrossEncoderReranker:
    return CrossEncoderReranker(model_path)


def configured_reranker() -> Reranker | None:
    """The cross-encoder at KB_RERANKER_MODEL_PATH (a local folder), or none: the fused ranking stands."""
    path = settings.KB_RERANKER_MODEL_PATH
    return _cross_encoder(path) if path else None
