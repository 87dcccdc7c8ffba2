"""Windows: consecutive log records grouped for embedding, under a token budget and a time span."""

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from extract.logs.records import LogRecord


@dataclass(frozen=True)
class LogWindow:
    text: str
    char_start: int
    char_end: int
    start: datetime | None
    end: datetime | None
    hosts: tuple[str, ...]
    programs: tuple[str, ...]
    severity_counts: dict[str, int]
    record_count: int
    token_count: int
    peers: tuple[str, ...] = ()  # distinct LogRecord.peer values, in order of appearance


# IPv6-ish groups, 0x.. numbers and any run of hex digits holding a decimal digit: what varies between repeats.
_VARIABLE = re.compile(r"(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}|0x[0-9a-fA-F]+|[0-9a-fA-F]*\d[0-9a-fA-F]*")


class _Run(NamedTuple):
    """Consecutive records whose messages agree up to numbers and addresses, shown once."""

    key: str
    first: LogRecord
    repeats: int
    text: str
    tokens: int


@dataclass
class _Draft:
    runs: list[_Run] = field(default_factory=list)
    records: list[LogRecord] = field(default_factory=list)
    tokens: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None

    def spans(self, record: LogRecord, max_span: timedelta) -> bool:
        moment = record.timestamp
        if moment is None or self.earliest is None:
            return True
        return max(self.latest, moment) - min(self.earliest, moment) <= max_span

    def add(self, record: LogRecord, run: _Run) -> None:
        if run.repeats:
            self.tokens -= self.runs.pop().tokens
        self.runs.append(run)
        self.tokens += run.tokens
        self.records.append(record)
        if record.timestamp:
            self.earliest = min(self.earliest or record.timestamp, record.timestamp)
            self.latest = max(self.latest or record.timestamp, record.timestamp)

    def window(self) -> LogWindow:
        return LogWindow(
            text="\n".join(run.text for run in self.runs),
            char_start=self.records[0].char_start,
            char_end=self.records[-1].char_end,
            start=self.earliest,
            end=self.latest,
            hosts=tuple(sorted({record.host for record in self.records if record.host})),
            programs=tuple(sorted({record.program for record in self.records if record.program})),
            severity_counts=dict(Counter(record.severity for record in self.records if record.severity)),
            record_count=len(self.records),
            token_count=self.tokens,
            peers=tuple(dict.fromkeys(record.peer for record in self.records if record.peer)),
        )


def _repeated(run: _Run, record: LogRecord) -> str:
    until = f" until {record.timestamp.isoformat()}" if record.timestamp else ""
    return f"{run.first.text}\n[… repeated {run.repeats + 1} more times{until}]"


def _truncate(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> str:
    low, high = 0, len(text)  # the longest prefix within budget, by bisection on characters
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def log_windows(
    records: list[LogRecord],
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    max_span: timedelta = timedelta(minutes=10),
) -> list[LogWindow]:
    """Consecutive records grouped under a token budget and a time span, with repeated messages shown once.

    token_count is the sum of count_tokens over the window's records (or runs of repeats), not over the joined text.
    """
    windows: list[LogWindow] = []
    draft = _Draft()
    for record in records:
        if draft.records and not draft.spans(record, max_span):
            windows.append(draft.window())
            draft = _Draft()
        key = _VARIABLE.sub("#", record.message)
        last = draft.runs[-1] if draft.runs else None
        if last and last.key == key:
            text = _repeated(last, record)
            tokens = count_tokens(text)
            if draft.tokens - last.tokens + tokens <= max_tokens:
                draft.add(record, _Run(key, last.first, last.repeats + 1, text, tokens))
                continue
        tokens = count_tokens(record.text)
        if draft.records and draft.tokens + tokens > max_tokens:
            windows.append(draft.window())
            draft = _Draft()
        if tokens > max_tokens:
            # Alone and cut to the budget; its span still covers the whole record so that nothing looks lost.
            text = _truncate(record.text, count_tokens, max_tokens)
            draft.add(record, _Run(key, record, 0, text, count_tokens(text)))
            windows.append(draft.window())
            draft = _Draft()
            continue
        draft.add(record, _Run(key, record, 0, record.text, tokens))
    if draft.records:
        windows.append(draft.window())
    return windows
