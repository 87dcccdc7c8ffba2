"""Log records: a log's text split into records, each with its time, host, program, severity and remote peer.

A record starts at a line that carries a record header (a timestamp, a JSON object with one, or a syslog
"host program[pid]:" prefix without a time, as journal entries are exported). In a file whose format was detected,
any other line continues the record above it, so stack traces, Java's two-line records and pretty-printed bodies
stay whole; indented lines and the lines of tracebacks always continue. Nothing is dropped: text before the first
header, and lines of a file with no recognisable format, become records without a timestamp.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from extract.logs.formats import (
    CONTINUATION,
    FORMAT_PARSERS,
    Head,
    detect_log_format,
    parse_timestamped,
    parse_untimed_syslog,
)
from extract.logs.peers import Sessions, message_peer
from extract.logs.severities import keyword_severity
from extract.logs.timestamps import Clock


@dataclass(frozen=True)
class LogRecord:
    timestamp: datetime | None
    host: str | None
    program: str | None
    severity: str | None
    message: str
    text: str
    char_start: int
    char_end: int
    line_number: int
    # The remote party of the event (client address or hostname), as opposed to `host`, the machine that wrote it.
    peer: str | None = None


def parse_log(
    text: str,
    *,
    log_format: str | None = None,
    default_timezone: tzinfo = UTC,
    reference_year: int | None = None,
    now: datetime | None = None,
) -> list[LogRecord]:
    """Every record of `text`, in order; `log_format` (one of detect_log_format's names) skips detection.

    Times written without a zone are read in `default_timezone`. Timestamps without a year (BSD syslog) take
    `reference_year` for the first record and roll over into the next year after December; without it, each takes
    the latest year that puts it no more than a day after `now` (aware; default: the current time), which handles
    the rollover for any file less than a year old. A time of day without a date is taken as the latest such
    moment not after `now`.

    Each record's `peer` is the remote party its message names (see message_peer) or, failing that, the one named
    earlier in the same session (see Sessions).
    """
    if log_format is not None and log_format not in FORMAT_PARSERS:
        raise ValueError(f"unknown log format {log_format!r}")
    log_format = log_format or detect_log_format(text)
    preferred = FORMAT_PARSERS.get(log_format)
    # Specific formats before the generic one, so that lines of another format in the file keep host and program.
    parsers = sorted(FORMAT_PARSERS.values(), key=lambda parse: (parse is parse_timestamped, parse is not preferred))
    clock = Clock(default_timezone, reference_year, now)

    spans: list[list] = []  # [head, line number, start, end of the first line, end]
    offset = 0
    for number, raw in enumerate(text.split("\n"), 1):
        start, offset = offset, offset + len(raw) + 1
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        end = start + len(line)
        continuation = CONTINUATION.match(line)
        head = None if continuation else next(filter(None, (parse(line) for parse in parsers)), None)
        if head is None and not continuation:
            head = parse_untimed_syslog(line)  # a record of its own, though it has no time
        if head is None and spans and (log_format or continuation):
            spans[-1][4] = end
        else:
            spans.append([head or Head(None, message=line), number, start, end, end])

    records = []
    sessions = Sessions()
    for head, number, start, first_line_end, end in spans:
        message = head.message + text[first_line_end:end]
        timestamp = clock.resolve(head.stamp)
        peer = head.peer or message_peer(head.message)
        if peer is None and end > first_line_end:
            # The first line is the event; the lines that continue it (a trace, a dump) count when it names nobody.
            peer = message_peer(message)
        peer = sessions.peer(
            host=head.host, program=head.program, pid=head.pid, message=head.message, timestamp=timestamp, peer=peer
        )
        records.append(
            LogRecord(
                timestamp=timestamp,
                host=head.host,
                program=head.program,
                severity=head.severity or keyword_severity(message),
                message=message,
                text=text[start:end],
                char_start=start,
                char_end=end,
                line_number=number,
                peer=peer,
            )
        )
    return records
