"""Scoring a generated answer against its question: the passages it cites, the key facts it states, its refusal.

- A citation [n] counts when the passage it points to comes from an expected document and holds the expected span
  (evaluation.matching.holds_expected, the rule retrieval relevance uses).
- A key fact is stated when the answer holds the fact's words one after the other, both normalised as spans are
  (evaluation.matching.words_of: case, punctuation and whitespace ignored, "docu- mentation" joined) and citation
  marks removed: "25 days" is stated by "You get 25 Days [1]." and not by "twenty-five days" nor "25-day".
- An answer abstains when it says, in its first sentence, that the documents do not say (the wording the ask flow's
  prompt asks for and its own "not in the sources" answer use, and their usual variants: REFUSAL).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from evaluation.matching import words_of

_CITATION_MARK = re.compile(r"\[\d{1,3}\]")
_FIRST_SENTENCE = re.compile(r"^.*?(?:[.!?](?:\s|$)|\n|$)", re.DOTALL)
_SOURCES = r"(?:documents?|passages?|sources?|context|texts?|information (?:given|provided))"
REFUSAL = re.compile(
    "|".join(
        (
            rf"\b{_SOURCES}\b[^.!?\n]{{0,60}}\b(?:do(?:es)?\s*n[o']?t|never)\s+"
            r"(?:say|mention|contain|provide|include|state|specify|cover|answer|give|tell)",
            r"\bnot\s+(?:in|mentioned in|covered (?:in|by)|found in|included in|stated in|given in)\s+the\s+"
            + _SOURCES,
            r"\b(?:no|not enough)\s+(?:information|passage|mention|details?)\b",
            r"\b(?:can\s*not|can't|unable to)\s+(?:answer|find|determine|tell)\b",
            r"\bi\s+(?:do\s+not|don't)\s+know\b",
        )
    ),
    re.IGNORECASE,
)


def fact_stated(answer: str, fact: str) -> bool:
    """The fact's normalised words appear in the answer consecutively and in order."""
    fact_words = words_of(fact)
    if not fact_words:
        return False
    answer_words = words_of(_CITATION_MARK.sub(" ", answer))
    width = len(fact_words)
    return any(answer_words[start : start + width] == fact_words for start in range(len(answer_words) - width + 1))


def abstains(answer: str) -> bool:
    """The answer's first sentence says the documents do not say."""
    first = _FIRST_SENTENCE.match(answer.strip())
    return bool(first and REFUSAL.search(first.group(0).replace("’", "'")))


@dataclass(frozen=True)
class AnswerScore:
    """One answered question's outcome."""

    unanswerable: bool
    citations: tuple[bool, ...]  # per citation, in the answer's order: its passage holds an expected span
    facts: tuple[bool, ...]  # per key fact the question expects: stated
    abstained: bool

    @property
    def cites_expected(self) -> bool:
        return any(self.citations)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def answer_summary(scores: Sequence[AnswerScore]) -> dict:
    """The answers' scores as shares (None where nothing was there to count):

    - citation_accuracy: answerable questions whose answer cites at least one expected passage;
    - citation_precision: citations of answerable questions' answers that point to an expected passage;
    - key_fact_recall: key facts stated, over all the facts the answerable questions expect (micro-averaged);
    - abstention: unanswerable questions whose answer abstained; false_refusal_rate: answerable ones whose did.
    """
    answerable = [s for s in scores if not s.unanswerable]
    unanswerable = [s for s in scores if s.unanswerable]
    citations = [hit for s in answerable for hit in s.citations]
    facts = [stated for s in answerable for stated in s.facts]
    return {
        "citation_accuracy": _share(sum(s.cites_expected for s in answerable), len(answerable)),
        "citation_precision": _share(sum(citations), len(citations)),
        "key_fact_recall": _share(sum(facts), len(facts)),
        "abstention": _share(sum(s.abstained for s in unanswerable), len(unanswerable)),
        "false_refusal_rate": _share(sum(s.abstained for s in answerable), len(answerable)),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "citations": len(citations),
        "facts": len(facts),
    }
