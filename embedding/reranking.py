"""An optional last stage of retrieval: a cross-encoder reads the question with each candidate passage and scores it."""

import functools

from embedding.encoders import stay_offline


class CrossEncoderReranker:
    def __init__(self, model_path: str) -> None:
        stay_offline()
        from sentence_transformers import CrossEncoder

        self._model = CrossEncoder(model_path, device="cpu", local_files_only=True)

    def scores(self, query: str, passages: list[str]) -> list[float]:
        """One relevance score per passage, higher is better."""
        if not passages:
            return []
        pairs = [(query, passage) for passage in passages]
        return [float(score) for score in self._model.predict(pairs, show_progress_bar=False)]


@functools.lru_cache(maxsize=2)
def cross_encoder(model_path: str) -> CrossEncoderReranker:
    return CrossEncoderReranker(model_path)
