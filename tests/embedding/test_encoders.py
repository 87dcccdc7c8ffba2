"""Questions through ONNX Runtime get the vectors sentence-transformers gives them; other models fall back to it."""

import numpy as np
import pytest

from embedding import encoders
from embedding.encoders import encode, model_directory, question_encoder
from embedding.onnx_questions import OnnxQueryEncoder, UnsupportedForOnnx, onnx_query_encoder

FAQ_QUESTIONS = [  # from the Python 3.11 FAQ, and a log line: what people ask here
    "Is there a tool to help find bugs or perform static analysis?",
    "How can I have modules that mutually import each other?",
    "Why does Python use indentation for grouping of statements?",
    "How do I convert a string to a number?",
    "Dec  1 21:45:16 web01 sshd[812]: Failed password for root from 198.51.100.23 port 40022 ssh2",
    "an unusually long question " * 80,  # past the model's 256 tokens: truncated the same way
]


@pytest.fixture(autouse=True)
def fresh_encoders():
    question_encoder.cache_clear()
    yield
    question_encoder.cache_clear()


def _cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.sum(first * second, axis=1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))


def test_the_default_model_embeds_questions_through_onnx_with_sentence_transformers_vectors(tmp_path):
    embed = question_encoder("", backend="onnx", onnx_cache_dir=tmp_path)
    assert isinstance(embed.__self__, OnnxQueryEncoder)

    through_onnx = np.stack([embed(question) for question in FAQ_QUESTIONS])
    through_torch = encode("", FAQ_QUESTIONS)
    assert through_onnx.shape == through_torch.shape == (len(FAQ_QUESTIONS), 384)
    assert _cosines(through_onnx, through_torch).min() > 0.9999
    assert np.allclose(np.linalg.norm(through_onnx, axis=1), 1.0, atol=1e-5)


def test_the_export_is_made_once_and_found_again(tmp_path):
    model = model_directory("")
    onnx_query_encoder(model, cache_dir=tmp_path, threads=1)
    [exported] = tmp_path.glob("*/model.onnx")
    written = exported.stat().st_mtime_ns

    again = onnx_query_encoder(model, cache_dir=tmp_path, threads=1)

    assert exported.stat().st_mtime_ns == written
    assert [path.name for path in tmp_path.iterdir()] == [exported.parent.name]  # no staging folder left behind
    assert again.encode("How do I convert a string to a number?").shape == (384,)


@pytest.fixture(scope="module")
def max_pooling_model(tmp_path_factory):
    """A real model folder this module cannot reproduce: the same transformer with max pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(str(model_directory("")))
    folder = tmp_path_factory.mktemp("max-pooling")
    SentenceTransformer(modules=[transformer, Pooling(384, pooling_mode="max")], device="cpu").save(str(folder))
    return folder


def test_a_model_the_export_cannot_reproduce_embeds_questions_with_sentence_transformers(tmp_path, max_pooling_model):
    with pytest.raises(UnsupportedForOnnx, match="pooling 'max'"):
        onnx_query_encoder(max_pooling_model, cache_dir=tmp_path, threads=1)
    assert list(tmp_path.iterdir()) == []

    embed = question_encoder(str(max_pooling_model), backend="onnx", onnx_cache_dir=tmp_path)
    assert not isinstance(getattr(embed, "__self__", None), OnnxQueryEncoder)
    vector = embed("How do I convert a string to a number?")
    assert np.allclose(vector, encode(str(max_pooling_model), ["How do I convert a string to a number?"])[0])


def test_the_torch_setting_keeps_questions_on_sentence_transformers(tmp_path, monkeypatch):
    exports = []
    monkeypatch.setattr(encoders, "onnx_query_encoder", lambda *args, **kwargs: exports.append(args))
    vector = question_encoder("", backend="torch", onnx_cache_dir=tmp_path)("How do I convert a string to a number?")
    assert exports == []
    assert np.allclose(vector, encode("", ["How do I convert a string to a number?"])[0])


def test_an_unknown_question_backend_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="unknown question encoder 'tensorflow'"):
        question_encoder("", backend="tensorflow", onnx_cache_dir=tmp_path)
