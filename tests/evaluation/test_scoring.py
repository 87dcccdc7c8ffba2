"""Set files, span matching and scores, without the database."""

import pytest

from evaluation.answers import AnswerScore, abstains, answer_summary, fact_stated
from evaluation.matching import holds, holds_expected, share_held, words_of
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


def test_a_passage_is_relevant_when_its_own_document_holds_the_span():
    expected = (ExpectedSpan(document="leave.md", span="Annual leave is 25 days a year"),)
    passage = "# Leave\nAnnual leave is 25 days a year. Carrying over needs approval."
    assert holds_expected(document="leave.md", passage=passage, expected=expected)
    assert not holds_expected(document="copy-of-leave.md", passage=passage, expected=expected)
    assert not holds_expected(document="leave.md", passage="# Expenses\nTravel is reimbursed.", expected=expected)


def test_a_key_fact_is_stated_when_its_words_follow_each_other_whatever_the_case_and_punctuation():
    answer = "You get 25 Days [1] of annual leave; carrying-over needs your manager's approval."
    assert fact_stated(answer, "25 days of annual leave")  # the citation mark between them does not count
    assert fact_stated(answer, "25 days")
    assert fact_stated(answer, "Carrying over needs your manager's approval.")
    assert fact_stated("It is 25\n days.", "25 days")  # whitespace
    assert not fact_stated(answer, "days 25")  # the order matters
    assert not fact_stated(answer, "25 days a year")  # every word of the fact, not most of them
    assert not fact_stated("twenty-five days", "25 days")  # no paraphrase
    assert not fact_stated("a 25-day allowance", "25 days")
    assert not fact_stated(answer, "  ")


def test_an_answer_abstains_when_its_first_sentence_says_the_documents_do_not_say():
    for refusal in (
        "The documents you can read do not say: no passage matches this question.",  # the ask flow's own
        "The documents do not say what is on the canteen menu.",
        "The passages don’t mention the canteen.",
        "This is not in the sources.",
        "There is no information about the canteen menu in the documents [1].",
        "I cannot answer this from the passages.",
        "I don't know.",
    ):
        assert abstains(refusal), refusal
    for answer in (
        "Annual leave is 25 days a year [1].",
        "Annual leave is 25 days [1]. The documents do not say whether part-timers get as many.",  # later
        "",
    ):
        assert not abstains(answer), answer


def test_answer_scores_are_shares_of_what_there_was_to_count():
    scores = [
        AnswerScore(unanswerable=False, citations=(False, True), facts=(True, False), abstained=False),
        AnswerScore(unanswerable=False, citations=(False,), facts=(True,), abstained=False),
        AnswerScore(unanswerable=False, citations=(), facts=(), abstained=True),
        AnswerScore(unanswerable=True, citations=(True,), facts=(), abstained=False),  # its citations do not count
        AnswerScore(unanswerable=True, citations=(), facts=(), abstained=True),
    ]
    assert [s.cites_expected for s in scores[:3]] == [True, False, False]
    assert answer_summary(scores) == {
        "citation_accuracy": round(1 / 3, 4),
        "citation_precision": round(1 / 3, 4),
        "key_fact_recall": round(2 / 3, 4),
        "abstention": 0.5,
        "false_refusal_rate": round(1 / 3, 4),
        "answerable": 3,
        "unanswerable": 2,
        "citations": 3,
        "facts": 3,
    }
    assert answer_summary([AnswerScore(unanswerable=True, citations=(), facts=(), abstained=True)]) == {
        "citation_accuracy": None,
        "citation_precision": None,
        "key_fact_recall": None,
        "abstention": 1.0,
        "false_refusal_rate": None,
        "answerable": 0,
        "unanswerable": 1,
        "citations": 0,
        "facts": 0,
    }
