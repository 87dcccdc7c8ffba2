"""Set files, span matching and scores, without the database."""

import pytest

from evaluation.matching import holds, share_held, words_of
from evaluation.metrics import abstention_summary, question_score, retrieval_summary
from evaluation.sets import EvalQuestion, ExpectedSpan, SetFormatError, read_csv, read_jsonl, write_csv, write_jsonl

QUESTIONS = [
    EvalQuestion(
        question="why is the block structure based on indentation",
        expected=(ExpectedSpan(document="faq/design.html", span="Guido van Rossum believes that using indentation"),),
        facts=("indentation", "no begin/end brackets"),
    ),
    EvalQuestion(question="what is the canteen's menu on friday", unanswerable=True),
]


def test_sets_round_trip_through_json_lines_and_csv():
    assert read_jsonl(write_jsonl(QUESTIONS)) == QUESTIONS
    assert read_csv(write_csv(QUESTIONS)) == QUESTIONS


def test_a_bad_set_names_the_line():
    with pytest.raises(SetFormatError, match="line 2"):
        read_jsonl('{"question": "a", "unanswerable": true}\n{"question": "b"}\n')
    with pytest.raises(SetFormatError, match="line 1"):
        read_jsonl('{"question": 1, "unanswerable": true}\n')  # a field of the wrong type
    with pytest.raises(SetFormatError, match="line 1"):
        read_jsonl('{"question": "a", "expected": ["not an object"]}\n')
    with pytest.raises(SetFormatError, match="header"):
        read_csv("q,doc\nx,y\n")


def test_pdf_hyphenation_and_case_do_not_hide_a_span():
    assert words_of("The docu- mentation\nsays") == ["the", "documentation", "says"]
    passage = "Python FAQ. GUIDO van Rossum believes that using inden-\ntation for grouping is extremely elegant."
    assert holds(passage, "Guido van Rossum believes that using indentation for grouping")


def test_a_passage_cut_at_a_boundary_holds_the_span_when_most_of_it_is_there():
    span = "one two three four five six seven eight nine ten"
    assert share_held("intro one two three four five six seven", span) == pytest.approx(0.7)
    assert holds("intro one two three four five six seven", span)
    assert not holds("intro one two three four", span)
    assert not holds("ten nine eight seven six five four three two one", span)  # the order matters


def test_scores():
    scores = [
        question_score([True, False], expected_count=1),
        question_score([False, False, True], expected_count=1),
        question_score([False] * 10 + [True], expected_count=1),
    ]
    assert [s.first_relevant_rank for s in scores] == [1, 3, None]
    summary = retrieval_summary(scores)
    assert summary["recall@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["recall@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["mrr@10"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert summary["ndcg@10"] == pytest.approx((1 + 0.5) / 3, abs=1e-4)
    assert abstention_summary(answerable_refused=1, answerable=4, unanswerable_answered=0, unanswerable=2) == {
        "false_refusal_rate": 0.25,
        "false_answer_rate": 0.0,
        "answerable": 4,
        "unanswerable": 2,
    }
