"""Packing passages into the model's budget: never over it, whole documents when they fit, a stable order."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from kb.chat.context import (
    MIN_PASSAGE_TOKENS,
    ContextBudget,
    answer_messages,
    passages_packed,
    passages_prompt_text,
    turns_within_budget,
)
from kb.chat.selectors import Turn
from kb.search.selectors import PassageHit


def count_words(text: str) -> int:
    return len(text.split())


def make_document(document_id: int, *, passages: int, words: int = 50, heading_every: int = 2) -> list[PassageHit]:
    hits = []
    offset = 0
    for ordinal in range(passages):
        text = " ".join(f"d{document_id}p{ordinal}w{word}" for word in range(words))
        hits.append(
            PassageHit(
                chunk_id=document_id * 1000 + ordinal,
                document_id=document_id,
                version_id=document_id,
                document_title=f"Document {document_id}",
                collection_name="Handbook",
                heading=f"Section {ordinal // heading_every}",
                text=text,
                score=0.0,
                ordinal=ordinal,
                char_start=offset,
                char_end=offset + len(text),
            )
        )
        offset += len(text) + 1
    return hits


def packed(hits, documents, *, budget, whole=None):
    return passages_packed(
        hits=hits,
        document_passages={document[0].document_id: document for document in documents},
        whole_document_ids=whole if whole is not None else {document[0].document_id for document in documents},
        budget_tokens=budget,
        count_tokens=count_words,
    )


def prompt_words(result) -> int:
    return count_words(passages_prompt_text(result.passages))


@pytest.mark.parametrize("seed", range(25))
def test_packing_never_goes_over_the_budget(seed):
    chance = random.Random(seed)
    documents = [make_document(d, passages=chance.randint(1, 12), words=chance.randint(5, 120)) for d in range(1, 6)]
    every_passage = [passage for document in documents for passage in document]
    hits = chance.sample(every_passage, k=min(len(every_passage), chance.randint(1, 8)))
    budget = chance.randint(0, 2500)
    result = packed(
        hits, documents, budget=budget, whole={d[0].document_id for d in documents if chance.random() < 0.5}
    )
    assert result.tokens <= budget
    assert prompt_words(result) <= budget


def test_a_document_that_fits_goes_in_whole_in_reading_order():
    small, large = make_document(1, passages=4), make_document(2, passages=30)
    result = packed([small[2], large[10]], [small, large], budget=1000)
    assert result.whole_documents == (1,)
    assert [p.hit.chunk_id for p in result.passages if p.hit.document_id == 1] == [h.chunk_id for h in small]
    # The large one did not fit whole: its hit went in, with the neighbour that shares its section.
    assert {p.hit.ordinal for p in result.passages if p.hit.document_id == 2} == {10, 11}


def test_the_best_hits_go_first_when_not_everything_fits():
    documents = [make_document(d, passages=3, words=100) for d in (1, 2, 3)]
    hits = [documents[2][1], documents[0][0], documents[1][2]]
    result = packed(hits, documents, budget=250)
    chosen = {p.hit.chunk_id for p in result.passages}
    assert hits[0].chunk_id in chosen and hits[1].chunk_id in chosen
    assert result.whole_documents == ()
    # The hit that did not fit whole was cut to what was left, not dropped, when enough was left for a passage.
    assert all(len(p.text) <= len(p.hit.text) for p in result.passages)


def test_the_order_is_stable_whatever_the_ranking():
    documents = [make_document(d, passages=2, words=20) for d in (5, 3, 9)]
    hits = [document[0] for document in documents]
    first = packed(hits, documents, budget=2000)
    second = packed(list(reversed(hits)), documents, budget=2000)
    assert passages_prompt_text(first.passages) == passages_prompt_text(second.passages)
    assert [p.hit.document_id for p in first.passages] == [3, 3, 5, 5, 9, 9]
    assert [p.number for p in first.passages] == list(range(1, 7))


def test_log_windows_go_in_time_order():
    windows = make_document(7, passages=3, words=10)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Ordinals and times disagree on purpose: a log's windows are read by time.
    windows = [
        PassageHit(**{**window.__dict__, "time_start": start + timedelta(minutes=minutes)})
        for window, minutes in zip(windows, (30, 10, 20), strict=True)
    ]
    result = packed(windows, [windows], budget=1000, whole=set())
    assert [p.hit.time_start.minute for p in result.passages] == [10, 20, 30]


def test_overlapping_neighbours_are_not_repeated():
    text = "alpha beta gamma delta epsilon zeta eta theta"
    first = make_document(4, passages=2, words=1)[0]
    first = PassageHit(**{**first.__dict__, "text": text[:30], "char_start": 0, "char_end": 30})
    second = PassageHit(
        **{
            **first.__dict__,
            "chunk_id": first.chunk_id + 1,
            "ordinal": 1,
            "text": text[17:],
            "char_start": 17,
            "char_end": len(text),
        }
    )
    result = packed([first, second], [[first, second]], budget=1000)
    assert "".join(p.text + " " for p in result.passages).split() == text.split()


def test_nothing_goes_in_below_the_smallest_useful_passage():
    document = make_document(1, passages=2, words=200)
    assert packed([document[0]], [document], budget=MIN_PASSAGE_TOKENS - 1).passages == []


def test_the_budget_comes_from_the_model_and_the_first_token_target():
    gpu = ContextBudget(
        context_length=262_144, answer_tokens=2048, prefill_tokens_per_second=20_000, first_token_target_seconds=2
    )
    cpu = ContextBudget(
        context_length=8192, answer_tokens=200, prefill_tokens_per_second=500, first_token_target_seconds=2
    )
    small_context = ContextBudget(
        context_length=2048, answer_tokens=200, prefill_tokens_per_second=100_000, first_token_target_seconds=2
    )
    slow = ContextBudget(
        context_length=8192, answer_tokens=200, prefill_tokens_per_second=50, first_token_target_seconds=2
    )
    assert gpu.prompt_tokens == 40_000
    assert cpu.prompt_tokens == 1000
    assert small_context.prompt_tokens < 2048 - 200
    assert slow.prompt_tokens == 600  # a floor: too little to answer from below it
    assert cpu.history_tokens == 250 and slow.history_tokens == 150


def test_a_follow_up_starts_with_the_same_prefix_as_the_question_before():
    document = make_document(1, passages=3, words=30)
    passages = packed([document[0]], [document], budget=1000).passages
    first = answer_messages(passages=passages, turns=[], question="How do I reset it?")
    turn = Turn(question_id=1, record_id=1, question="How do I reset it?", answer="Hold the button [1].")
    follow_up = answer_messages(passages=passages, turns=[turn], question="And how long?")
    assert follow_up[0] == first[0]
    assert follow_up[1:] == [
        {"role": "user", "content": "How do I reset it?"},
        {"role": "assistant", "content": "Hold the button."},
        {"role": "user", "content": "And how long?"},
    ]


def test_the_most_recent_turns_that_fit_are_kept_oldest_first_the_oldest_shortened():
    turns = [Turn(question_id=n, record_id=n, question=f"q{n} " * 10, answer=f"a{n} " * 30) for n in range(5)]
    kept = turns_within_budget(turns=turns, budget_tokens=148, count_tokens=count_words)
    assert [turn.question_id for turn in kept] == [2, 3, 4]
    assert kept[1:] == turns[3:]
    assert kept[0].answer.endswith(" …") and 24 <= count_words(kept[0].answer) < 30
    assert sum(count_words(t.question) + count_words(t.answer) + 10 for t in kept) <= 148


def test_a_follow_up_keeps_the_turn_before_it_even_when_its_answer_is_long():
    turn = Turn(question_id=1, record_id=1, question="why indentation", answer="word " * 500)
    kept = turns_within_budget(turns=[turn], budget_tokens=84, count_tokens=count_words)
    assert [t.question_id for t in kept] == [1] and count_words(kept[0].answer) <= 84 - 2 - 10
