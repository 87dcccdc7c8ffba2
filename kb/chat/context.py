"""What the model is given: passages packed into a budget taken from the answering model, in a cache-stable order.

The budget is the model's context length less the answer's tokens, capped so that the prompt's prefill stays within
a first-token target at the engine's measured speed; earlier turns of the conversation take a share of it. Whole
documents go in when they fit; otherwise the hits with the neighbours that complete their section. Passages are laid
out by document, then in reading order (time order for log windows), so that a follow-up over the same documents
renders the same prefix and reuses the engine's prefix cache.
"""

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from inference.chat_template import ChatMessage
from kb.chat.selectors import Turn
from kb.search.selectors import PassageHit

# A passage shorter than this is not worth a slot: the model would see a heading and a few words.
MIN_PASSAGE_TOKENS = 40
# The part of the prompt budget that earlier turns of a conversation may take, and what they get at least: a
# follow-up means little without the exchange before it.
HISTORY_SHARE = 0.25
MIN_HISTORY_TOKENS = 150
# Below this a prompt holds too little to answer from, whatever the first token costs on a slow or busy machine.
MIN_PROMPT_TOKENS = 600
# A turn's role headers in the chat template.
TURN_OVERHEAD_TOKENS = 10
# Less of an earlier answer than this says too little to be worth keeping.
MIN_ANSWER_TOKENS_KEPT = 24
# Chat-template markup, role headers and the system prompt's wording around the passages.
PROMPT_OVERHEAD_TOKENS = 200


@dataclass(frozen=True)
class PromptPassage:
    number: int
    hit: PassageHit
    text: str


@dataclass(frozen=True, kw_only=True)
class ContextBudget:
    """How many prompt tokens passages and earlier turns may take, and what decided it (kept in the record)."""

    context_length: int
    answer_tokens: int
    prefill_tokens_per_second: float
    first_token_target_seconds: float

    @property
    def prompt_tokens(self) -> int:
        room = self.context_length - self.answer_tokens - PROMPT_OVERHEAD_TOKENS
        by_first_token = int(self.prefill_tokens_per_second * self.first_token_target_seconds)
        return max(0, min(room, max(by_first_token, MIN_PROMPT_TOKENS)))

    @property
    def history_tokens(self) -> int:
        return min(max(int(self.prompt_tokens * HISTORY_SHARE), MIN_HISTORY_TOKENS), self.prompt_tokens // 2)

    def as_record(self) -> dict:
        return {
            "context_length": self.context_length,
            "answer_tokens": self.answer_tokens,
            "prefill_tokens_per_second": round(self.prefill_tokens_per_second, 1),
            "first_token_target_seconds": self.first_token_target_seconds,
            "prompt_tokens": self.prompt_tokens,
        }


@dataclass(frozen=True)
class PackedPassages:
    passages: list[PromptPassage]  # in prompt order, numbered from 1
    whole_documents: tuple[int, ...]  # documents given entire
    tokens: int  # an upper bound: overlaps trimmed at lay-out are still counted


def document_header(hit: PassageHit) -> str:
    return f"## {hit.document_title} ({hit.collection_name})"


def passage_block(*, number: int, hit: PassageHit, text: str) -> str:
    heading = f"{hit.heading}\n" if hit.heading else ""
    return f"[{number}] {heading}{text}"


def passages_packed(
    *,
    hits: Sequence[PassageHit],
    document_passages: Mapping[int, Sequence[PassageHit]],
    whole_document_ids: Collection[int],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
) -> PackedPassages:
    """Choose passages within `budget_tokens`, then lay them out in a stable order.

    `hits` are ranked; `document_passages` holds, for documents among them, their readable passages in reading order:
    all of them for `whole_document_ids`, else at least each hit's neighbours. First each hit in rank order (the
    first that does not fit is cut to what is left, and is the last), then whole documents that fit what is left, in
    the order of their best hit, then the neighbours of chosen hits that share their section.
    """
    chosen: dict[int, tuple[PassageHit, str]] = {}
    documents_started: set[int] = set()
    remaining = budget_tokens

    def cost(hit: PassageHit, text: str) -> int:
        header = 0 if hit.document_id in documents_started else count_tokens(document_header(hit)) + 2
        # Numbers of three digits at most: the count holds for every place the passage may take.
        return header + count_tokens(passage_block(number=999, hit=hit, text=text)) + 2

    def take(hit: PassageHit, text: str) -> None:
        nonlocal remaining
        remaining -= cost(hit, text)
        chosen[hit.chunk_id] = (hit, text)
        documents_started.add(hit.document_id)

    for hit in hits:
        if hit.chunk_id in chosen:
            continue
        if remaining < MIN_PASSAGE_TOKENS:
            break
        if cost(hit, hit.text) <= remaining:
            take(hit, hit.text)
            continue
        cut = _cut_to_fit(hit, remaining - cost(hit, ""), count_tokens)
        if cut:
            take(hit, cut)
        break

    whole: list[int] = []
    if remaining >= MIN_PASSAGE_TOKENS:
        for document_id in dict.fromkeys(hit.document_id for hit in hits):
            passages = document_passages.get(document_id, ())
            if document_id not in whole_document_ids or any(_is_cut(chosen, passage) for passage in passages):
                continue
            missing = [passage for passage in passages if passage.chunk_id not in chosen]
            if sum(cost(passage, passage.text) for passage in missing) <= remaining:
                for passage in missing:
                    take(passage, passage.text)
                whole.append(document_id)

    for hit in hits:
        if hit.chunk_id not in chosen or hit.document_id in whole:
            continue
        for neighbour in _section_neighbours(hit, document_passages.get(hit.document_id, ())):
            if neighbour.chunk_id not in chosen and cost(neighbour, neighbour.text) <= remaining:
                take(neighbour, neighbour.text)

    laid_out = _laid_out(sorted(chosen.values(), key=lambda pair: _reading_order(pair[0])))
    return PackedPassages(passages=laid_out, whole_documents=tuple(whole), tokens=budget_tokens - remaining)


def _is_cut(chosen: Mapping[int, tuple[PassageHit, str]], passage: PassageHit) -> bool:
    return passage.chunk_id in chosen and chosen[passage.chunk_id][1] != passage.text


def _section_neighbours(hit: PassageHit, passages: Sequence[PassageHit]) -> list[PassageHit]:
    """The passages just before and after a hit in the same section: they complete what the hit starts or ends."""
    return [
        passage for passage in passages if abs(passage.ordinal - hit.ordinal) == 1 and passage.heading == hit.heading
    ]


def _cut_to_fit(hit: PassageHit, tokens: int, count_tokens: Callable[[str], int]) -> str:
    if tokens < MIN_PASSAGE_TOKENS:
        return ""
    text = hit.text
    while text and count_tokens(passage_block(number=999, hit=hit, text=text)) + 2 > tokens:
        text = text[: int(len(text) * 0.85)]
    return text


def _reading_order(hit: PassageHit) -> tuple:
    # Documents by id, which no question changes; inside one, log windows by time and the rest by place.
    return (hit.document_id, hit.time_start is None, hit.time_start.timestamp() if hit.time_start else 0, hit.ordinal)


def _laid_out(pairs: list[tuple[PassageHit, str]]) -> list[PromptPassage]:
    """Numbered in prompt order; a passage that overlaps the one before it in its document (chunks share a few
    sentences at their edges) loses the shared start, so that the model reads nothing twice."""
    passages: list[PromptPassage] = []
    previous: PassageHit | None = None
    for hit, text in pairs:
        if (
            previous is not None
            and previous.version_id == hit.version_id
            and hit.ordinal == previous.ordinal + 1
            and hit.char_start < previous.char_end
            and text == hit.text
            and len(text) == hit.char_end - hit.char_start
        ):
            text = text[previous.char_end - hit.char_start :].lstrip()
        passages.append(PromptPassage(number=len(passages) + 1, hit=hit, text=text))
        previous = hit
    return passages


def passages_prompt_text(passages: Sequence[PromptPassage]) -> str:
    """The passages grouped under their document's title, in prompt order."""
    blocks: list[str] = []
    previous: PassageHit | None = None
    for passage in passages:
        hit = passage.hit
        if previous is None or hit.document_id != previous.document_id:
            blocks.append(document_header(hit))
        elif hit.heading == previous.heading:
            hit = replace(hit, heading="")  # the section goes on: its heading once is enough
        blocks.append(passage_block(number=passage.number, hit=hit, text=passage.text))
        previous = passage.hit
    return "\n\n".join(blocks)


SYSTEM_PROMPT = (
    "You are the company knowledge base assistant. Answer the user's last question using only the numbered passages "
    "of the documents below. Cite the passages you use as [1], [2]. If the passages do not contain the answer, say "
    "that the documents do not say, and do not guess."
)
_CITATION_MARK = re.compile(r"\s?\[\d{1,3}\]")


def answer_messages(*, passages: Sequence[PromptPassage], turns: Sequence[Turn], question: str) -> list[ChatMessage]:
    """Documents first, in the system message, then the conversation, then the question: a follow-up over the same
    documents starts with the same tokens as the question before it."""
    documents = passages_prompt_text(passages) or "(no passages)"
    messages: list[ChatMessage] = [{"role": "system", "content": f"{SYSTEM_PROMPT}\n\n# Documents\n\n{documents}"}]
    for turn in turns:
        # Earlier answers' citation numbers point into earlier prompts' passages, not these.
        messages.append({"role": "user", "content": turn.question})
        messages.append({"role": "assistant", "content": _CITATION_MARK.sub("", turn.answer)})
    messages.append({"role": "user", "content": question})
    return messages


def turns_within_budget(*, turns: Sequence[Turn], budget_tokens: int, count_tokens: Callable[[str], int]) -> list[Turn]:
    """The most recent turns that fit the budget together, oldest first. The oldest one kept may have its answer
    shortened to fit: a follow-up needs the exchange just before it more than it needs all of that answer."""
    kept: list[Turn] = []
    remaining = budget_tokens
    for turn in reversed(turns):
        question_tokens = count_tokens(turn.question) + TURN_OVERHEAD_TOKENS
        answer_tokens = count_tokens(turn.answer)
        if question_tokens + answer_tokens <= remaining:
            kept.append(turn)
            remaining -= question_tokens + answer_tokens
            continue
        room = remaining - question_tokens
        if room >= MIN_ANSWER_TOKENS_KEPT:
            shortened = turn.answer[: len(turn.answer) * room // max(answer_tokens, 1)]
            while shortened and count_tokens(shortened + " …") > room:
                shortened = shortened[: int(len(shortened) * 0.85)]
            if shortened:
                kept.append(replace(turn, answer=shortened.rstrip() + " …"))
        break
    return kept[::-1]


def estimated_token_counter(count_tokens: Callable[[str], int], sample: str) -> Callable[[str], int]:
    """Counting every passage with the model's tokenizer may mean a request to the serving process each: one exact
    count of a sample (the candidate passages together) gives tokens per character, and each text is estimated from
    it with a margin. The assembled prompt is still checked against the context once, exactly."""
    per_character = count_tokens(sample) / len(sample) if sample else 0.5
    return lambda text: math.ceil(len(text) * per_character * 1.1) + 1
