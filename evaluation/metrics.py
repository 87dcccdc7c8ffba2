"""Retrieval and abstention scores from ranked passages, with binary relevance (a passage holds an expected span)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

CUTOFFS = (1, 5, 10)


@dataclass(frozen=True)
class QuestionScore:
    """One answerable question's outcome: the 1-based rank of the first relevant passage (None: not in the top 10)."""

    first_relevant_rank: int | None
    ndcg_at_10: float


def question_score(relevant: Sequence[bool], *, expected_count: int) -> QuestionScore:
    """`relevant[i]`: whether the passage at rank i+1 holds an expected span; `expected_count`: how many spans the
    question expects (the ideal ranking has that many relevant passages first, up to 10)."""
    top = list(relevant[:10])
    first = next((rank for rank, hit in enumerate(top, start=1) if hit), None)
    dcg = sum(1 / math.log2(rank + 1) for rank, hit in enumerate(top, start=1) if hit)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(max(expected_count, 1), 10) + 1))
    return QuestionScore(first_relevant_rank=first, ndcg_at_10=min(dcg / ideal, 1.0) if ideal else 0.0)


def retrieval_summary(scores: Sequence[QuestionScore]) -> dict[str, float]:
    """Recall@1/5/10 (a relevant passage within the cutoff), MRR@10 and nDCG@10, averaged over the questions."""
    if not scores:
        return {}
    count = len(scores)
    summary = {
        f"recall@{cutoff}": sum(1 for s in scores if s.first_relevant_rank and s.first_relevant_rank <= cutoff) / count
        for cutoff in CUTOFFS
    }
    summary["mrr@10"] = sum(1 / s.first_relevant_rank for s in scores if s.first_relevant_rank) / count
    summary["ndcg@10"] = sum(s.ndcg_at_10 for s in scores) / count
    return {name: round(value, 4) for name, value in summary.items()}


def abstention_summary(
    *, answerable_refused: int, answerable: int, unanswerable_answered: int, unanswerable: int
) -> dict:
    """False refusals (an answerable question told "not in the sources") and false answers (an unanswerable one
    answered anyway), as shares of their kind."""
    return {
        "false_refusal_rate": round(answerable_refused / answerable, 4) if answerable else None,
        "false_answer_rate": round(unanswerable_answered / unanswerable, 4) if unanswerable else None,
        "answerable": answerable,
        "unanswerable": unanswerable,
    }
