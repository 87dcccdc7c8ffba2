"""Questions embedded through ONNX Runtime: the same model and weights, exported once from its own folder.

Embedding the question is the largest single part of a search. One short question through sentence-transformers on
PyTorch takes 17-21 ms at p50 on one of this machine's cores, through ONNX Runtime 7-8 ms, with the same vector
(cosine 0.9999999 or more over the Python FAQ questions; bench/query_encoder.py, BENCHMARKS.md). Passages are still
embedded by sentence-transformers: they come in batches, where PyTorch's overhead is spread thin.

sentence-transformers' own ONNX backend needs optimum-onnx, which requires transformers < 4.58 (we use 5.x), so
the export is torch.onnx's, of the model's transformer, and pooling and normalisation are done here. Only the
shapes we can reproduce exactly are exported (a transformer, then mean or CLS pooling, then optional
normalisation); the export is checked against sentence-transformers on sample questions before it is used. Any
other model, or a failed check, embeds questions with sentence-transformers, as passages are.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_MANIFEST = "query-encoder.json"
_CHECK_QUESTIONS = (
    "How do I make an executable from a Python script?",
    "Why are default values shared between objects?",
    "What is the notice period for employees during probation?",
    "sshd: Failed password for invalid user admin from 203.0.113.7 port 52144",
)
_CHECK_MIN_COSINE = 0.9999


class UnsupportedForOnnx(Exception):
    """The model is not one this module reproduces exactly; questions go through sentence-transformers."""


@dataclass(frozen=True)
class OnnxQueryEncoder:
    session: object  # onnxruntime.InferenceSession
    tokenizer: object  # tokenizers.Tokenizer, truncating as the model does
    input_names: tuple[str, ...]
    pooling: str  # "mean" or "cls"

    def encode(self, text: str) -> np.ndarray:
        encoding = self.tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        tokens = self.session.run(None, {name: inputs[name] for name in self.input_names})[0][0]
        if self.pooling == "cls":
            vector = tokens[0]
        else:
            vector = (tokens * mask[0][:, None]).sum(axis=0) / mask.sum()
        # Normalised whatever the model's last module: every vector this app stores is (encoders.encode).
        return (vector / np.linalg.norm(vector)).astype(np.float32)


def onnx_query_encoder(model_dir: Path, *, cache_dir: Path, threads: int | None) -> OnnxQueryEncoder:
    """The exported encoder of this model folder, exporting it first if this version of the folder has none."""
    target = cache_dir / _fingerprint(model_dir)
    if not (target / _MANIFEST).exists():
        _export(model_dir, target)
    return _load(target, threads=threads)


def _fingerprint(model_dir: Path) -> str:
    """Names, sizes and times of the model's files: a changed or replaced model is exported again."""
    digest = hashlib.sha256(str(model_dir.resolve()).encode())
    for path in sorted(model_dir.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(model_dir)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _load(target: Path, *, threads: int | None) -> OnnxQueryEncoder:
    import onnxruntime
    from tokenizers import Tokenizer

    manifest = json.loads((target / _MANIFEST).read_text())
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(target / "model.onnx"), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(target / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(manifest["max_seq_length"])
    return OnnxQueryEncoder(
        session=session, tokenizer=tokenizer, input_names=tuple(manifest["input_names"]), pooling=manifest["pooling"]
    )


def _export(model_dir: Path, target: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    modules = list(model)
    if (
        len(modules) not in (2, 3)
        or not isinstance(modules[0], Transformer)
        or not isinstance(modules[1], Pooling)
        or (len(modules) == 3 and not isinstance(modules[2], Normalize))
    ):
        raise UnsupportedForOnnx(f"modules {[type(module).__name__ for module in modules]}")
    pooling = modules[1].pooling_mode
    if pooling not in ("mean", "cls"):
        raise UnsupportedForOnnx(f"pooling {pooling!r}")
    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.exists():
        raise UnsupportedForOnnx("no tokenizer.json (a fast tokenizer) in the model folder")
    sample = model.tokenizer([_CHECK_QUESTIONS[0]], return_tensors="pt")
    input_names = tuple(name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        logger.info("exporting the question encoder of %s to ONNX (once per model)", model_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _token_embeddings_module(modules[0].auto_model.eval(), input_names),
                tuple(sample[name] for name in input_names),
                str(staging / "model.onnx"),
                input_names=list(input_names),
                output_names=["token_embeddings"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*input_names, "token_embeddings")},
                opset_version=17,
                dynamo=False,
            )
        shutil.copyfile(tokenizer_file, staging / "tokenizer.json")  # the content; its mode follows the umask
        (staging / _MANIFEST).write_text(
            json.dumps(
                {
                    "model_dir": str(model_dir),
                    "pooling": pooling,
                    "input_names": list(input_names),
                    "max_seq_length": model.max_seq_length,
                }
            )
        )
        exported = _load(staging, threads=1)
        for question in _CHECK_QUESTIONS:
            expected = model.encode([question], normalize_embeddings=True, convert_to_numpy=True)[0]
            cosine = float(expected @ exported.encode(question))
            if cosine < _CHECK_MIN_COSINE:
                raise UnsupportedForOnnx(f"the export differs from sentence-transformers (cosine {cosine:.6f})")
        try:
            os.replace(staging, target)  # another process may have finished the same export first: keep either
        except OSError:
            if not (target / _MANIFEST).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _token_embeddings_module(transformer, input_names: tuple[str, ...]):
    """The transformer's last hidden states from positional inputs: what torch.onnx traces."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs):
            return self.transformer(**dict(zip(input_names, inputs))).last_hidden_state

    return TokenEmbeddings()
