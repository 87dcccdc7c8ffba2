"""Whether a passage holds an expected span: most of the span's words, in order, after the same normalisation of
both (case, punctuation, whitespace, and line-break hyphenation as PDF text has it, "docu- mentation")."""

import re
from collections.abc import Iterable
from difflib import SequenceMatcher

from evaluation.sets import ExpectedSpan

# "Most of a gold answer sentence": a passage cut at a chunk boundary still counts when it holds this share.
HOLDS_SHARE = 0.6
_HYPHENATED_BREAK = re.compile(r"(\w)-\s*\n\s*(\w)|(\w)- (\w)")
_WORD = re.compile(r"\w+")


def words_of(text: str) -> list[str]:
    joined = _HYPHENATED_BREAK.sub(lambda m: (m.group(1) or m.group(3)) + (m.group(2) or m.group(4)), text)
    return _WORD.findall(joined.lower())


def share_held(passage: str | list[str], span: str | list[str]) -> float:
    """The share of the span's words that the passage holds in the span's order."""
    passage_words = words_of(passage) if isinstance(passage, str) else passage
    span_words = words_of(span) if isinstance(span, str) else span
    if not span_words:
        return 0.0
    matcher = SequenceMatcher(None, passage_words, span_words, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(span_words)


def holds(passage: str, span: str, *, share: float = HOLDS_SHARE) -> bool:
    return share_held(passage, span) >= share


def holds_expected(*, document: str, passage: str, expected: Iterable[ExpectedSpan]) -> bool:
    """A passage of `document` (its original name) is relevant: it comes from an expected document and holds that
    document's expected span. Retrieval ranks and answers' citations are judged by this one rule."""
    return any(span.document == document and holds(passage, span.span) for span in expected)
