"""Split a parsed document into passages sized in the embedding model's own tokens.

A chunk never runs past a section boundary once it is at least half full, so passages follow the document's
structure; a section longer than one chunk is cut at the last sentence end in the window, with overlap.
"""

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime

from tokenizers import Tokenizer

from extract.logs import log_windows, parse_log
from extract.types import ParsedDocument

_SENTENCE_ENDS = (".", "!", "?", ":", ";")


@dataclass(frozen=True, kw_only=True)
class ChunkDraft:
    heading: str
    text: str
    char_start: int
    char_end: int
    token_count: int
    # PDFs only: the pages the passage starts and ends on.
    first_page: int | None = None
    last_page: int | None = None
    time_start: datetime | None = None
    time_end: datetime | None = None
    hosts: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    severity_counts: dict[str, int] = field(default_factory=dict)


def chunk_document(
    *, document: ParsedDocument, tokenizer: Tokenizer, max_tokens: int, overlap_tokens: int
) -> list[ChunkDraft]:
    if not 0 <= overlap_tokens < max_tokens // 2:
        raise ValueError("overlap must be smaller than half the chunk size")
    offsets = [span for span in tokenizer.encode(document.text, add_special_tokens=False).offsets if span[1] > span[0]]
    section_starts = sorted({section.start for section in document.sections})
    boundary_tokens = _first_token_at_or_after(offsets, section_starts)
    whole_spans = _token_spans(offsets, document.whole_spans)

    drafts: list[ChunkDraft] = []
    start = 0
    while start < len(offsets):
        hard_end = min(start + max_tokens, len(offsets))
        end = _structural_end(start, hard_end, boundary_tokens, max_tokens)
        cut_inside_section = end == hard_end and hard_end < len(offsets) and hard_end not in boundary_tokens
        around_table = _end_outside_whole_spans(start, end, whole_spans, max_tokens)
        if around_table != end:
            end, cut_inside_section = around_table, False  # the table starts the next chunk, without overlap
        elif cut_inside_section:
            end = _sentence_end(document.text, offsets, start, end, max_tokens)
        char_start, char_end = offsets[start][0], offsets[end - 1][1]
        drafts.append(
            ChunkDraft(
                heading=_heading_at(document, char_start),
                text=document.text[char_start:char_end],
                char_start=char_start,
                char_end=char_end,
                token_count=end - start,
                first_page=_page_at(document.page_starts, char_start),
                last_page=_page_at(document.page_starts, char_end - 1),
            )
        )
        start = _overlap_start(document.text, offsets, end, overlap_tokens, start) if cut_inside_section else end
    return drafts


def _ends_sentence(text: str, offsets: list[tuple[int, int]], token: int) -> bool:
    token_text = text[offsets[token][0] : offsets[token][1]]
    next_char = text[offsets[token][1] : offsets[token][1] + 1]
    return token_text.endswith(_SENTENCE_ENDS) and (not next_char or next_char.isspace())


def _overlap_start(text: str, offsets: list[tuple[int, int]], end: int, overlap_tokens: int, start: int) -> int:
    """Repeat up to `overlap_tokens` of the previous chunk, starting at a sentence start where there is one."""
    earliest = max(end - overlap_tokens, start + 1)
    for token in range(earliest - 1, end - 1):
        if _ends_sentence(text, offsets, token):
            return token + 1
    return earliest


def _first_token_at_or_after(offsets: list[tuple[int, int]], char_positions: list[int]) -> set[int]:
    tokens, index = set(), 0
    for position in char_positions:
        while index < len(offsets) and offsets[index][0] < position:
            index += 1
        tokens.add(index)
    return tokens


def _token_spans(offsets: list[tuple[int, int]], char_spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    token_starts = [span[0] for span in offsets]
    return [(bisect_left(token_starts, start), bisect_left(token_starts, end)) for start, end in char_spans]


def _end_outside_whole_spans(start: int, end: int, spans: list[tuple[int, int]], max_tokens: int) -> int:
    """Move a chunk end out of a table that fits in one chunk: before it, or after it when the chunk starts there."""
    for span_start, span_end in spans:
        if span_start < end < span_end and span_end - span_start <= max_tokens:
            return span_start if span_start > start else span_end
    return end


def _structural_end(start: int, hard_end: int, boundary_tokens: set[int], max_tokens: int) -> int:
    for token in range(start + max_tokens // 2, hard_end):
        if token in boundary_tokens:
            return token
    return hard_end


def _sentence_end(text: str, offsets: list[tuple[int, int]], start: int, end: int, max_tokens: int) -> int:
    earliest = start + (max_tokens * 2) // 3
    for token in range(end - 1, earliest, -1):
        if _ends_sentence(text, offsets, token):
            return token + 1
    return end


def _heading_at(document: ParsedDocument, char_position: int) -> str:
    heading = document.title
    for section in document.sections:
        if section.start <= char_position:
            heading = section.heading
        else:
            break
    return heading


def _page_at(page_starts: list[tuple[int, int]], char_position: int) -> int | None:
    index = bisect_right([start for _, start in page_starts], char_position) - 1
    return page_starts[index][0] if index >= 0 else None


def chunk_log(
    *, text: str, log_format: str | None, title: str, tokenizer: Tokenizer, max_tokens: int
) -> list[ChunkDraft]:
    """Log files become time windows of records, each knowing its time range, hosts, programs and severities."""

    def count_tokens(record_text: str) -> int:
        return len(tokenizer.encode(record_text, add_special_tokens=False).ids)

    windows = log_windows(parse_log(text, log_format=log_format), count_tokens=count_tokens, max_tokens=max_tokens)
    return [
        ChunkDraft(
            heading=_window_heading(title, window.start, window.end, window.hosts),
            text=window.text,
            char_start=window.char_start,
            char_end=window.char_end,
            token_count=window.token_count,
            time_start=window.start,
            time_end=window.end,
            hosts=window.hosts,
            programs=window.programs,
            peers=window.peers,
            severity_counts=window.severity_counts,
        )
        for window in windows
    ]


def _window_heading(title: str, start: datetime | None, end: datetime | None, hosts: tuple[str, ...]) -> str:
    parts = [title]
    if start is not None:
        parts.append(f"{start:%Y-%m-%d %H:%M:%S}" + (f" – {end:%H:%M:%S}" if end and end != start else ""))
    if hosts:
        parts.append(", ".join(hosts[:3]) + (" …" if len(hosts) > 3 else ""))
    return " · ".join(parts)
