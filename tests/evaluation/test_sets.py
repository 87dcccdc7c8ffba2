"""The shipped evaluation sets (evaluation/sets/<name>/questions.jsonl): they read, their spans are really in their
documents as both the product and the naive reference extract them, and their questions are not the documents' words.

A set whose documents come from a Debian package that is not installed is skipped with the package's name
(`./kbctl test` installs them all).
"""

import functools
import shutil
from pathlib import Path

import pytest

from evaluation.corpora import CorpusMissing, corpus_of, questions_path, set_names
from evaluation.matching import holds, share_held, words_of
from evaluation.sets import read_jsonl
from extract.parsing import parse_document

SETS = set_names()
MIN_ANSWERABLE = 25
MIN_UNANSWERABLE = 6


@functools.cache
def _questions(set_name: str):
    return read_jsonl(questions_path(set_name).read_text())


@functools.cache
def _product_texts(set_name: str) -> dict[str, str]:
    corpus = corpus_of(set_name)
    return {name: parse_document(data=data, filename=name).text for name, data in corpus.documents.items()}


def _corpus_or_skip(set_name: str) -> dict[str, str]:
    try:
        names = corpus_of(set_name).documents
    except CorpusMissing as missing:
        pytest.skip(f"the {set_name} set's documents are not installed: {missing}")
    if any(name.endswith(".odt") for name in names) and not shutil.which("pandoc"):
        pytest.skip("unstructured reads ODT through pandoc: install the Debian package pandoc")
    return _product_texts(set_name)


@pytest.mark.parametrize("set_name", SETS)
def test_every_set_reads_and_has_enough_questions_of_each_kind(set_name):
    questions = _questions(set_name)
    answerable = [q for q in questions if not q.unanswerable]
    assert len(answerable) >= MIN_ANSWERABLE
    assert len(questions) - len(answerable) >= MIN_UNANSWERABLE
    assert all(1 <= len(q.expected) <= 2 for q in answerable)
    assert len({q.question for q in questions}) == len(questions), "a question is asked twice"
    assert (questions_path(set_name).parent / "README.md").is_file()


@pytest.mark.parametrize("set_name", SETS)
def test_every_expected_span_is_held_by_the_products_extraction_of_its_document(set_name):
    texts = _corpus_or_skip(set_name)
    words = {name: words_of(text) for name, text in texts.items()}
    missing = [
        (expected.document, expected.span[:80], round(share_held(words[expected.document], expected.span), 2))
        for question in _questions(set_name)
        for expected in question.expected
        if expected.document not in words or share_held(words[expected.document], expected.span) < 1.0
    ]
    assert not missing, "spans not found word for word in their document's text"


@pytest.mark.parametrize("set_name", SETS)
def test_every_expected_span_is_held_by_the_naive_extraction_of_its_document(set_name):
    from bench.naive_retrieval import naive_text

    try:
        corpus = corpus_of(set_name)
    except CorpusMissing as missing:
        pytest.skip(f"the {set_name} set's documents are not installed: {missing}")
    if any(name.endswith(".pdf") for name in corpus.documents) and not shutil.which("pdftotext"):
        pytest.skip("pdftotext is missing: install the Debian package poppler-utils")
    texts = {name: naive_text(name, data) for name, data in corpus.documents.items()}
    for question in _questions(set_name):
        for expected in question.expected:
            assert holds(texts[expected.document], expected.span, share=1.0), (expected.document, expected.span[:80])


@pytest.mark.parametrize("set_name", SETS)
def test_no_question_is_copied_from_its_documents(set_name):
    texts = {name: " ".join(text.lower().split()) for name, text in _corpus_or_skip(set_name).items()}
    for question in _questions(set_name):
        asked = " ".join(question.question.lower().split())
        assert not any(asked in text for text in texts.values()), question.question


def test_the_python_docs_set_names_its_documents_as_the_demo_uploads_them():
    from kb.documents.management.commands.kb_seed_demo import DEMO

    demo_names = {Path(page).name for spec in DEMO.values() for page in spec["pages"]}
    named = {expected.document for question in _questions("python-docs") for expected in question.expected}
    assert named <= demo_names
    assert len(named) == len(demo_names), "every demo page has questions"
