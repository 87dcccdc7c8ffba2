"""Log files: detect the format from the content, parse records, and group records into windows for ingestion.

A record starts at a line that carries a record header (a timestamp, or a JSON object with one). In a file whose
format was detected, any other line continues the record above it, so stack traces, Java's two-line records and
pretty-printed bodies stay whole; indented lines always continue. Nothing is dropped: text before the first header,
or in a file with no recognisable format, becomes records without a timestamp.

Pure Python and free of Django, so scripts and benchmarks can use it directly.
"""

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import NamedTuple

SEVERITIES = ("emerg", "alert", "crit", "error", "warning", "notice", "info", "debug")


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


# --- severities -------------------------------------------------------------------------------------------------

_SEVERITY_WORDS = {
    "emerg": "emerg", "emergency": "emerg", "panic": "emerg",
    "alert": "alert",
    "crit": "crit", "critical": "crit", "fatal": "crit", "severe": "crit",
    "err": "error", "error": "error", "eror": "error",
    "warn": "warning", "warning": "warning",
    "notice": "notice",
    "info": "info", "information": "info", "informational": "info",
    "debug": "debug", "trace": "debug", "verbose": "debug", "config": "debug",
    "fine": "debug", "finer": "debug", "finest": "debug",
}
_WORDS = "|".join(sorted(_SEVERITY_WORDS, key=len, reverse=True))
# Only words that read as a level: bracketed ([error], <warn>), upper case (ERROR, NOTICE[12]), a lead-in followed
# by a colon (sshd's "error: ..."), or a level= key. A bare "failed" or "error" inside a sentence says nothing.
_LEVEL_TOKEN = re.compile(
    rf"(?<![\w-])(?:[\[<(](?i:(?P<bracketed>{_WORDS}))\d?[\]>)]|(?P<upper>{_WORDS.upper()})(?![\w-])"
    rf"|(?i:(?P<colon>{_WORDS})):\s|(?i:level|lvl|severity|levelname)=[\"']?(?i:(?P<keyed>{_WORDS}))\b)"
)
# pino/bunyan numeric levels
_NUMERIC_LEVELS = ((60, "crit"), (50, "error"), (40, "warning"), (30, "info"), (0, "debug"))


def _severity_word(word: str) -> str | None:
    return _SEVERITY_WORDS.get(word.lower().rstrip("0123456789"))  # Apache's trace1..trace8


def _severity_number(value: int) -> str | None:
    if 0 <= value < len(SEVERITIES):  # syslog / journald PRIORITY
        return SEVERITIES[value]
    return next((name for floor, name in _NUMERIC_LEVELS if value >= floor), None)


def _keyword_severity(message: str) -> str | None:
    match = _LEVEL_TOKEN.search(message, 0, 80)
    return _severity_word(next(word for word in match.groups() if word)) if match else None


# --- timestamps -------------------------------------------------------------------------------------------------

_ZONE_OFFSETS = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "WEST": 60, "BST": 60, "CET": 60, "CEST": 120, "MET": 60,
    "MEST": 120, "EET": 120, "EEST": 180, "MSK": 180, "EST": -300, "EDT": -240, "CST": -360, "CDT": -300,
    "MST": -420, "MDT": -360, "PST": -480, "PDT": -420, "AKST": -540, "AKDT": -480, "HST": -600, "JST": 540,
    "AEST": 600, "AEDT": 660,
}
_ZONE_NAMES = "|".join(sorted(_ZONE_OFFSETS, key=len, reverse=True))
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

_MON = rf"(?P<b>{'|'.join(_MONTHS)})[a-z]*\.?"  # Jan, June, sept.
_MM = r"(?P<m>0[1-9]|1[0-2])"
_DD = r"(?P<d>0[1-9]|[12]\d|3[01])"
_HMS = r"(?P<H>[01]?\d|2[0-3]):(?P<M>[0-5]\d):(?P<S>[0-5]\d|60)(?:[.,](?P<f>\d{1,9}))?"
_ZONE = rf"\s?(?-i:(?P<z>Z|[+-]\d\d:?\d\d|{_ZONE_NAMES}))(?![\w:])"
_ISO = rf"(?P<Y>\d{{4}})(?P<sep>[-/.:]){_MM}(?P=sep){_DD}(?:T|\s+|-){_HMS}(?:{_ZONE})?"
_CTIME = (
    rf"(?:(?-i:(?P<zp>{_ZONE_NAMES}))\s+)?(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?{_MON}[ -]+"
    rf"(?P<d>[0-2]?\d|3[01])(?:,?\s+(?P<Y>\d{{4}}))?\s+{_HMS}(?:\s*(?P<p>[ap]m))?(?:\s+(?P<Y2>\d{{4}})(?![\d:]))?"
    rf"(?:{_ZONE})?"
)


def _timestamp_pattern(body: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.:]){body}(?!\d)", re.IGNORECASE)


# Shapes found in real logs, tried at every early position of a line; the earliest match wins.
_TIMESTAMPS = [
    _timestamp_pattern(_ISO),  # ISO 8601, Python logging, nginx/MySQL/stunnel YYYY/mm/dd, YYYY.mm.dd
    _timestamp_pattern(_CTIME),  # syslog, ctime, Java's "apr 15, 2013 8:34:08 PM", monit's "[PDT Apr 16 ...]"
    _timestamp_pattern(rf"{_MON}-{_DD}-(?P<y>\d\d)\s+{_HMS}"),  # Apr-07-13 07:08:36
    _timestamp_pattern(rf"{_DD}(?P<sep>[-/ ]){_MON}(?P=sep)(?P<Y>\d{{4}})[: ]+{_HMS}(?:{_ZONE})?"),  # Apache, BIND
    _timestamp_pattern(rf"{_DD}(?P<sep>[-.]){_MM}(?P=sep)(?P<Y>\d{{4}})\s+{_HMS}(?:{_ZONE})?"),  # dd-mm-YYYY
    _timestamp_pattern(rf"{_MM}/{_DD}/(?P<Y>\d{{4}})(?:\s+-)?\s+{_HMS}(?:{_ZONE})?"),  # US mm/dd/YYYY
    _timestamp_pattern(rf"(?P<y>\d\d){_MM}{_DD}\s+{_HMS}"),  # MySQL 5.5: 130324  0:04:00
    _timestamp_pattern(rf"{_MM}-{_DD}\s+{_HMS}"),  # FreeSWITCH: 08-03 07:56:53.026292
    _timestamp_pattern(r"(?P<epoch>1\d{9})(?:\.(?P<f>\d{1,9}))?"),  # squid, audit(...), [1387288694]
    _timestamp_pattern(r"@(?P<tai>4000000[0-9a-f]{9})[0-9a-f]{8}"),  # daemontools' TAI64N
]
_TIME_ONLY = re.compile(rf"\[?{_HMS}(?!\d)")  # logback's default HH:mm:ss.SSS, only at the very start
# A header's timestamp sits at the start of the line or after a short prefix such as "[pid:tid] ", "<W>", "t="
# or "type=USER_LOGIN msg=audit(" -- but never after "word: ", which means the message has begun.
_TIMESTAMP_REACH = 40
_MESSAGE_SEPARATORS = " \t])>:,|-"


class _Stamp(NamedTuple):
    """A timestamp as written: year or the whole date may be missing; tz is None for local times."""

    year: int | None
    month: int | None
    day: int | None
    clock: time
    tz: tzinfo | None


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    if name in _ZONE_OFFSETS:
        return timezone(timedelta(minutes=_ZONE_OFFSETS[name]))
    sign = -1 if name[0] == "-" else 1
    digits = name[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _fraction(digits: str | None) -> int:
    return int((digits or "0")[:6].ljust(6, "0"))


def _stamp(fields: dict[str, str | None]) -> _Stamp:
    if fields.get("epoch") or fields.get("tai"):
        seconds = int(fields["epoch"]) if fields.get("epoch") else int(fields["tai"], 16) - 2**62
        moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=_fraction(fields.get("f")))
        return _Stamp(moment.year, moment.month, moment.day, moment.timetz().replace(tzinfo=None), UTC)
    hour = int(fields["H"])
    if fields.get("p"):
        hour = hour % 12 + (12 if fields["p"].lower() == "pm" else 0)
    clock = time(hour, int(fields["M"]), min(int(fields["S"]), 59), _fraction(fields.get("f")))
    year = fields.get("Y") or fields.get("Y2")
    if fields.get("y"):
        year = 2000 + int(fields["y"])
    month = int(fields["m"]) if fields.get("m") else None
    if fields.get("b"):
        month = _MONTHS.index(fields["b"][:3].lower()) + 1
    day = int(fields["d"]) if fields.get("d") else None
    return _Stamp(int(year) if year else None, month, day, clock, _zone(fields.get("z") or fields.get("zp")))


def _find_timestamp(line: str) -> re.Match[str] | None:
    head = line[:_TIMESTAMP_REACH + 64]
    best = None
    for pattern in _TIMESTAMPS:
        match = pattern.search(head)
        if match and match.start() <= _TIMESTAMP_REACH and (best is None or match.start() < best.start()):
            best = match
    if best is None or ": " in line[:best.start()]:
        return _TIME_ONLY.match(line)
    return best


def _stamp_of_text(value: str) -> _Stamp | None:
    match = _find_timestamp(value)
    return _stamp(match.groupdict()) if match and match.start() == 0 else None


class _Clock:
    """Completes timestamps that lack a year or a date, in the order records appear."""

    def __init__(self, default_timezone: tzinfo, reference_year: int | None, now: datetime | None):
        self.default_timezone = default_timezone
        self.now = now or datetime.now(UTC)
        self.year = reference_year
        self.last_month: int | None = None

    def resolve(self, stamp: _Stamp | None) -> datetime | None:
        if stamp is None:
            return None
        tz = stamp.tz or self.default_timezone
        try:
            if stamp.month is None:
                # Only a time of day: fail2ban's rule, the latest such moment that is not in the future.
                moment = datetime.combine(self.now.astimezone(tz).date(), stamp.clock, tz)
                return moment - timedelta(days=1) if moment > self.now else moment
            if stamp.year is not None:
                return datetime.combine(date(stamp.year, stamp.month, stamp.day), stamp.clock, tz)
            return self._yearless(stamp, tz)
        except ValueError:  # year 0, 31 June, 29 February of a common year: the line has no usable time
            return None

    def _yearless(self, stamp: _Stamp, tz: tzinfo) -> datetime:
        if self.year is not None:
            # A known starting year: moving back more than half a year (December to January) starts the next one.
            if self.last_month is not None and self.last_month - stamp.month > 6:
                self.year += 1
            self.last_month = stamp.month
            return datetime.combine(date(self.year, stamp.month, stamp.day), stamp.clock, tz)
        # Otherwise the year that puts the record closest before `now` (a day of slack for clock and zone skew).
        year = self.now.astimezone(tz).year
        moment = datetime.combine(date(year, stamp.month, stamp.day), stamp.clock, tz)
        if moment > self.now + timedelta(days=1):
            moment = datetime.combine(date(year - 1, stamp.month, stamp.day), stamp.clock, tz)
        return moment


# --- one parser per format --------------------------------------------------------------------------------------


class _Head(NamedTuple):
    """What a record's first line says."""

    stamp: _Stamp | None
    host: str | None = None
    program: str | None = None
    severity: str | None = None
    message: str = ""


def _nil(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value


_PRI = r"(?:<(?P<pri>\d{1,3})>)?"
_RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) \S+ \S+ "
    r"(?:-|(?:\[(?:[^\]\"\\]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)(?: \ufeff?(?P<message>.*))?"
)
_SYSLOG_STAMPS = [re.compile(_PRI + _CTIME, re.IGNORECASE), re.compile(_PRI + _ISO.replace(r"(?:T|\s+|-)", "T"))]
# After the timestamp: BSD syslogd -v/-vv "<4.3>"/"<auth.info>", the host, then "tag[pid]:" (the colon may be
# missing after a pid, as proftpd writes it).
_SYSLOG_TAIL = re.compile(
    r"\s+(?:<(?P<facility>\w+)\.(?P<level>\w+)>\s+)?(?:(?P<host>[\w.:%-]+)\s+)?"
    r"(?:\[?(?P<tag>[A-Za-z_][^\s\[\]:]*)\]?(?:\[(?P<pid>\d+)\]:?|:)(?:\s+|$))?(?P<message>.*)"
)
_JOURNAL_MARKER = re.compile(r"-- (?:Logs begin at|Journal begins at|Boot [0-9a-f]+|Reboot|No entries)\b.*--\s*$")
_APACHE_ERROR = re.compile(
    r"\[(?P<ts>[^\]]+)\] \[(?:(?P<module>[\w-]+):)?(?P<level>[a-z]+\d?)\](?: \[pid [^\]]*\])?"
    r"(?: \[client [^\]]*\])? ?(?P<message>.*)"
)
_ACCESS = re.compile(r"\S+\s+\S+\s+\S+(?:\s+\S+)?\s+\[(?P<ts>[^\]]+)\]\s*(?P<message>.*)")
_HTTP_STATUS = re.compile(r"\"\s+(?P<status>[1-5]\d\d)\b")

_JSON_TIME_KEYS = ("timestamp", "@timestamp", "time", "ts", "datetime", "date", "t", "__REALTIME_TIMESTAMP")
_JSON_HOST_KEYS = ("host", "hostname", "_HOSTNAME", "host.name")
_JSON_PROGRAM_KEYS = ("SYSLOG_IDENTIFIER", "_COMM", "program", "app", "service", "service.name", "logger", "name")
_JSON_LEVEL_KEYS = ("level", "severity", "levelname", "log.level", "lvl", "PRIORITY")
_JSON_MESSAGE_KEYS = ("message", "msg", "MESSAGE", "@message", "log")


def _syslog_pri_severity(pri: str | None) -> str | None:
    return SEVERITIES[int(pri) & 7] if pri else None


def _parse_rfc5424(line: str) -> _Head | None:
    match = _RFC5424.match(line)
    stamp = _stamp_of_text(match["ts"]) if match and match["ts"] != "-" else None
    if not match or (stamp is None and match["ts"] != "-"):
        return None
    return _Head(stamp, _nil(match["host"]), _nil(match["app"]), _syslog_pri_severity(match["pri"]),
                 match["message"] or "")


def _parse_syslog(line: str, *, journal: bool = False) -> _Head | None:
    for index, pattern in enumerate(_SYSLOG_STAMPS):
        stamp_match = pattern.match(line)
        if not stamp_match:
            continue
        tail = _SYSLOG_TAIL.match(line, stamp_match.end())
        iso = index == 1
        if not tail or (iso and not tail["tag"]):  # an ISO timestamp alone is not enough to call it syslog
            continue
        # journalctl's short-precise and short-iso add what rsyslog's traditional format never writes.
        if journal and not (stamp_match["f"] if not iso else re.fullmatch(r"[+-]\d{4}", stamp_match["z"] or "")):
            return None
        level = tail["level"]
        severity = _syslog_pri_severity(stamp_match["pri"]) or (
            _severity_number(int(level)) if level and level.isdigit() else _severity_word(level or "")
        )
        return _Head(_stamp(stamp_match.groupdict()), tail["host"], tail["tag"], severity, tail["message"])
    return None


def _parse_rfc3164(line: str) -> _Head | None:
    return _parse_syslog(line)


def _parse_journal(line: str) -> _Head | None:
    if _JOURNAL_MARKER.match(line):
        return _Head(None, message=line)
    return _parse_syslog(line, journal=True)


def _parse_apache_error(line: str) -> _Head | None:
    match = _APACHE_ERROR.match(line)
    if not match or not _severity_word(match["level"]):
        return None
    stamp = _stamp_of_text(match["ts"])
    return _Head(stamp, None, match["module"], _severity_word(match["level"]), match["message"]) if stamp else None


def _parse_access(line: str) -> _Head | None:
    match = _ACCESS.match(line)
    stamp = _stamp_of_text(match["ts"].strip()) if match else None
    if stamp is None:
        return None
    status = _HTTP_STATUS.search(match["message"])
    code = int(status["status"]) if status else 0
    return _Head(stamp, severity="error" if code >= 500 else "warning" if code >= 400 else "info",
                 message=match["message"])


def _json_stamp(value: object) -> _Stamp | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e20:
        # seconds, milliseconds, microseconds (journald) or nanoseconds, told apart by magnitude
        scale = next(scale for scale in (1, 1e3, 1e6, 1e9) if value / scale < 1e11)
        moment = datetime.fromtimestamp(value / scale, UTC)
        return _Stamp(moment.year, moment.month, moment.day, moment.timetz().replace(tzinfo=None), UTC)
    return _stamp_of_text(value) if isinstance(value, str) else None


def _first_value(record: dict, keys: tuple[str, ...]) -> object:
    return next((record[key] for key in keys if record.get(key) not in (None, "")), None)


def _parse_jsonl(line: str) -> _Head | None:
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    stamp = _json_stamp(_first_value(record, _JSON_TIME_KEYS)) if isinstance(record, dict) else None
    if stamp is None:
        return None
    level = _first_value(record, _JSON_LEVEL_KEYS)
    if isinstance(level, str) and level.isdigit():
        level = int(level)
    message = _first_value(record, _JSON_MESSAGE_KEYS)
    host, program = _first_value(record, _JSON_HOST_KEYS), _first_value(record, _JSON_PROGRAM_KEYS)
    return _Head(
        stamp,
        host if isinstance(host, str) else None,
        program if isinstance(program, str) else None,
        _severity_number(level) if isinstance(level, int) else _severity_word(str(level)) if level else None,
        message if isinstance(message, str) else line if message is None else json.dumps(message),
    )


def _parse_timestamped(line: str) -> _Head | None:
    match = _find_timestamp(line)
    if match is None:
        return None
    return _Head(_stamp(match.groupdict()), message=line[match.end():].lstrip(_MESSAGE_SEPARATORS))


# Order matters twice: detection breaks ties in favour of the earlier (more specific) format, and parsing falls
# back through the table so that a file mixing formats still gets every timestamp.
_FORMATS: dict[str, Callable[[str], _Head | None]] = {
    "syslog-rfc5424": _parse_rfc5424,
    "journal": _parse_journal,
    "syslog-rfc3164": _parse_rfc3164,
    "apache-error": _parse_apache_error,
    "access-combined": _parse_access,
    "jsonl": _parse_jsonl,
    "timestamped": _parse_timestamped,
}
_DETECTION_SAMPLE = 200
_DETECTION_MAJORITY = 0.6


def detect_log_format(text: str) -> str | None:
    """Name of the format most sampled lines parse as, or None when no format covers a clear majority."""
    sample = [line for line in text.splitlines() if line.strip() and not line[0].isspace()][:_DETECTION_SAMPLE]
    if not sample:
        return None
    scores = {name: sum(parse(line) is not None for line in sample) for name, parse in _FORMATS.items()}
    if scores["journal"]:
        # journalctl's default "short" output is plain BSD syslog; its markers and precise stamps tell it apart.
        scores["journal"] = max(scores["journal"], scores["syslog-rfc3164"])
    best = max(scores, key=scores.get)  # first of equals, i.e. the more specific format
    return best if scores[best] >= _DETECTION_MAJORITY * len(sample) else None


def parse_log(
    text: str,
    *,
    log_format: str | None = None,
    default_timezone: tzinfo = UTC,
    reference_year: int | None = None,
    now: datetime | None = None,
) -> list[LogRecord]:
    """Every record of `text`, in order.

    Times written without a zone are read in `default_timezone`. Timestamps without a year (BSD syslog) take
    `reference_year` for the first record and roll over into the next year after December; without it they take
    the year that puts them at most a day after `now` (default: the current time), which also handles the
    rollover for any file less than a year old. A time of day without a date is taken as the latest such moment
    not after `now`.
    """
    log_format = log_format or detect_log_format(text)
    parsers = [_FORMATS[log_format]] if log_format else []
    parsers += [parse for parse in _FORMATS.values() if parse not in parsers]
    clock = _Clock(default_timezone, reference_year, now)

    records: list[LogRecord] = []
    head: _Head | None = None
    start = line_number = header_end = end = 0

    def close() -> None:
        record_text = text[start:end]
        records.append(LogRecord(
            timestamp=clock.resolve(head.stamp), host=head.host, program=head.program,
            severity=head.severity or _keyword_severity(head.message),
            message=head.message + text[header_end:end], text=record_text,
            char_start=start, char_end=end, line_number=line_number,
        ))

    offset = 0
    for number, raw in enumerate(text.split("\n"), 1):
        line_start, offset = offset, offset + len(raw) + 1
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        new_head = None if line[0].isspace() else next(filter(None, (parse(line) for parse in parsers)), None)
        if new_head is None and head is not None and (log_format or line[0].isspace()):
            end = line_start + len(line)
            continue
        if head is not None:
            close()
        head = new_head or _Head(None, message=line)
        start, line_number, end = line_start, number, line_start + len(line)
        header_end = end
    if head is not None:
        close()
    return records


# --- windows ----------------------------------------------------------------------------------------------------

# IPv6-ish groups, 0x.. numbers and any run of hex digits holding a decimal digit: what varies between repeats.
_VARIABLE = re.compile(r"(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}|0x[0-9a-fA-F]+|[0-9a-fA-F]*\d[0-9a-fA-F]*")


def _repeat_key(record: LogRecord) -> str:
    return _VARIABLE.sub("#", record.message)


@dataclass
class _Run:
    """Consecutive records with the same message up to numbers and addresses, shown once."""

    first: LogRecord
    last: LogRecord
    repeats: int
    text: str
    tokens: int


def _run_text(run_first: LogRecord, repeats: int, last: LogRecord) -> str:
    until = f" until {last.timestamp.isoformat()}" if last.timestamp else ""
    return f"{run_first.text}\n[… repeated {repeats} more times{until}]"


def _truncate(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> str:
    low, high = 0, len(text)  # longest prefix within budget, found by bisection on characters
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[:middle]) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _window(runs: list[_Run], records: list[LogRecord]) -> LogWindow:
    times = [record.timestamp for record in records if record.timestamp]
    return LogWindow(
        text="\n".join(run.text for run in runs),
        char_start=records[0].char_start,
        char_end=records[-1].char_end,
        start=min(times, default=None),
        end=max(times, default=None),
        hosts=tuple(sorted({record.host for record in records if record.host})),
        programs=tuple(sorted({record.program for record in records if record.program})),
        severity_counts=dict(Counter(record.severity for record in records if record.severity)),
        record_count=len(records),
        token_count=sum(run.tokens for run in runs),
    )


def log_windows(
    records: list[LogRecord],
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    max_span: timedelta = timedelta(minutes=10),
) -> list[LogWindow]:
    """Consecutive records grouped under a token budget and a time span; repeated messages shown once."""
    windows: list[LogWindow] = []
    runs: list[_Run] = []
    members: list[LogRecord] = []

    def flush() -> None:
        if members:
            windows.append(_window(runs, members))
        runs.clear()
        members.clear()

    for record in records:
        times = [member.timestamp for member in members if member.timestamp]
        if record.timestamp and times and max(*times, record.timestamp) - min(*times, record.timestamp) > max_span:
            flush()
        used = sum(run.tokens for run in runs)
        last = runs[-1] if runs else None
        if last and _repeat_key(last.last) == _repeat_key(record):
            text = _run_text(last.first, last.repeats + 1, record)
            tokens = count_tokens(text)
            if used - last.tokens + tokens <= max_tokens:
                runs[-1] = _Run(last.first, record, last.repeats + 1, text, tokens)
                members.append(record)
                continue
        tokens = count_tokens(record.text)
        if used + tokens > max_tokens:
            flush()
        if tokens > max_tokens:
            # Alone and cut to the budget; the span still names the whole record so nothing looks lost.
            text = _truncate(record.text, count_tokens, max_tokens)
            runs.append(_Run(record, record, 0, text, count_tokens(text)))
            members.append(record)
            flush()
            continue
        runs.append(_Run(record, record, 0, record.text, tokens))
        members.append(record)
    flush()
    return windows
