"""Log formats: one parser per format for a record's first line, and detection of a file's format by content."""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

from extract.logs.peers import peer_address
from extract.logs.severities import SEVERITIES, severity_number, severity_word
from extract.logs.timestamps import DATE, HMS, MON, ZONE, Stamp, find_timestamp, parse_stamp, stamp_of_text


class Head(NamedTuple):
    """What a record's first line says."""

    stamp: Stamp | None
    host: str | None = None
    program: str | None = None
    severity: str | None = None
    message: str = ""
    peer: str | None = None  # where the format has a field for it: access logs' client, Apache's [client ...]
    pid: str | None = None  # the writing process, from a syslog tag "sshd[4711]:" or RFC 5424's PROCID


def _nil(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value


_PRI = r"(?:<(?P<pri>\d{1,3})>)?"
_RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) \S+ "
    r"(?:-|(?:\[(?:[^\]\"\\]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)(?: \ufeff?(?P<message>.*))?"
)
_SYSLOG_STAMPS = [
    re.compile(rf"{_PRI}{MON}\s+(?P<d>[0-2]?\d|3[01])(?:\s+(?P<Y>\d{{4}}))?\s+{HMS}", re.IGNORECASE),
    re.compile(rf"{_PRI}{DATE}T{HMS}(?:{ZONE})?"),  # rsyslog's high-precision file format
]
# After the timestamp: BSD syslogd -v/-vv "<4.3>"/"<auth.info>", the host (colons only inside, for IPv6), then
# "tag[pid]:" (the colon may be missing after a pid, as proftpd writes it).
_SYSLOG_TAIL = re.compile(
    r"\s+(?:<\w+\.(?P<level>\w+)>\s+)?(?:(?P<host>(?:[\w.%-]|:(?!\s))+)\s+)?"
    r"(?:\[?(?P<tag>[A-Za-z_][^\s\[\]:]*)\]?(?:\[(?P<pid>\d+)\]:?|:)(?:\s+|$))?(?P<message>.*)"
)
# The same without a timestamp, as journal entries are often exported ("srv sshd[4711]: Failed password ..."), or
# a level with a thread id as Asterisk writes it to the journal ("NOTICE[566]: chan_sip.c: ..."). Only with the
# [pid] and the colon, so that ordinary continuation lines are not taken for records.
_UNTIMED_SYSLOG = re.compile(r"(?:(?P<host>[\w.-]+)\s+)?(?P<tag>[A-Za-z_][\w./-]*)\[(?P<pid>\d+)\]:\s+(?P<message>.*)")
_JOURNAL_MARKER = re.compile(r"-- (?:Logs begin at|Journal begins at|Boot [0-9a-f]+|Reboot|No entries)\b.*--\s*$")
# What journalctl's short-precise and short-iso write and rsyslog's traditional format never does.
_JOURNAL_STAMP = re.compile(
    r"[A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d\.\d+ |\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?[+-]\d{4} "
)
_APACHE_ERROR = re.compile(
    r"\[(?P<ts>[^\]]+)\] \[(?:(?P<module>[\w-]+):)?(?P<level>[a-z]+\d?)\](?: \[pid [^\]]*\])?"
    r"(?: \[client (?P<client>\[[^\]]*\][^\]\s]*|[^\]]*)\])? ?(?P<message>.*)"
)
_ACCESS = re.compile(r"(?P<client>\S+)\s+\S+\s+\S+(?:\s+\S+)?\s+\[(?P<ts>[^\]]+)\]\s*(?P<message>.*)")
_HTTP_STATUS = re.compile(r"\"\s+(?P<status>[1-5]\d\d)\b")

_JSON_TIME_KEYS = ("timestamp", "@timestamp", "time", "ts", "datetime", "date", "t", "__REALTIME_TIMESTAMP")
_JSON_HOST_KEYS = ("host", "hostname", "_HOSTNAME", "host.name", "host.hostname")
_JSON_PROGRAM_KEYS = ("SYSLOG_IDENTIFIER", "_COMM", "program", "app", "service", "service.name", "logger", "name")
_JSON_LEVEL_KEYS = ("level", "severity", "levelname", "log.level", "lvl", "PRIORITY")
_JSON_MESSAGE_KEYS = ("message", "msg", "MESSAGE", "@message", "log")


def _syslog_pri_severity(pri: str | None) -> str | None:
    return SEVERITIES[int(pri) & 7] if pri else None


def _parse_rfc5424(line: str) -> Head | None:
    match = _RFC5424.match(line)
    if not match:
        return None
    stamp = None if match["ts"] == "-" else stamp_of_text(match["ts"])
    if stamp is None and match["ts"] != "-":
        return None
    return Head(
        stamp,
        _nil(match["host"]),
        _nil(match["app"]),
        _syslog_pri_severity(match["pri"]),
        match["message"] or "",
        pid=_nil(match["procid"]),
    )


def _parse_rfc3164(line: str) -> Head | None:
    for iso, pattern in enumerate(_SYSLOG_STAMPS):
        stamp = pattern.match(line)
        tail = _SYSLOG_TAIL.match(line, stamp.end()) if stamp else None
        if not tail or (iso and not tail["tag"]):  # an ISO timestamp alone does not make a syslog line
            continue
        level = tail["level"] or ""
        severity = _syslog_pri_severity(stamp["pri"]) or (
            severity_number(int(level)) if _is_small_whole_number(level) else severity_word(level)
        )
        return Head(
            parse_stamp(stamp.groupdict()), tail["host"], tail["tag"], severity, tail["message"], pid=tail["pid"]
        )
    return None


def parse_untimed_syslog(line: str) -> Head | None:
    match = _UNTIMED_SYSLOG.match(line)
    if not match:
        return None
    if match["tag"].isupper() and severity_word(match["tag"]):  # a level and a thread id, not a program
        return Head(None, match["host"], None, severity_word(match["tag"]), match["message"])
    return Head(None, match["host"], match["tag"], None, match["message"], pid=match["pid"])


def _parse_journal(line: str) -> Head | None:
    if _JOURNAL_MARKER.match(line):
        return Head(None, message=line)
    return _parse_rfc3164(line) if _JOURNAL_STAMP.match(line) else None


def _parse_apache_error(line: str) -> Head | None:
    match = _APACHE_ERROR.match(line)
    if not match or not severity_word(match["level"]):
        return None
    stamp = stamp_of_text(match["ts"])
    if stamp is None:
        return None
    return Head(
        stamp,
        None,
        match["module"],
        severity_word(match["level"]),
        match["message"],
        peer_address(match["client"] or ""),
    )


def _parse_access(line: str) -> Head | None:
    match = _ACCESS.match(line)
    stamp = stamp_of_text(match["ts"].strip()) if match else None
    if stamp is None:
        return None
    status = _HTTP_STATUS.search(match["message"])
    code = int(status["status"]) if status else 0
    return Head(
        stamp,
        severity="error" if code >= 500 else "warning" if code >= 400 else "info",
        message=match["message"],
        peer=peer_address(match["client"]),
    )


def _json_stamp(value: object) -> Stamp | None:
    if isinstance(value, str) and _is_small_whole_number(value):
        value = int(value)
    if isinstance(value, (int, float)) and 0 < value < 1e20:
        # seconds, milliseconds, microseconds (journald) or nanoseconds, told apart by magnitude
        scale = next((scale for scale in (1, 1e3, 1e6, 1e9) if value / scale < 1e11), None)
        if scale is None:  # just under 1e20 nanoseconds, where float division rounds up to 1e11
            return None
        moment = datetime.fromtimestamp(value / scale, UTC)
        return Stamp(moment.year, moment.month, moment.day, moment.timetz().replace(tzinfo=None), UTC)
    return stamp_of_text(value) if isinstance(value, str) else None


def _is_small_whole_number(text: str) -> bool:
    """Digits int() reads ("²" is a digit it does not), few enough that it reads them at all (4,300 at most)."""
    return text.isdecimal() and len(text) <= 20


def _lookup(record: dict, key: str) -> object:
    if key in record or "." not in key:
        return record.get(key)
    outer, _, inner = key.partition(".")  # ECS nests what others flatten: {"log": {"level": ...}}
    return _lookup(record[outer], inner) if isinstance(record.get(outer), dict) else None


def _first_value(record: dict, keys: tuple[str, ...]) -> str | int | float | None:
    for key in keys:
        value = _lookup(record, key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            return value
    return None


def _parse_jsonl(line: str) -> Head | None:
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
        return None
    stamp = _json_stamp(_first_value(record, _JSON_TIME_KEYS)) if isinstance(record, dict) else None
    if stamp is None:
        return None
    level = _first_value(record, _JSON_LEVEL_KEYS)
    if isinstance(level, str) and _is_small_whole_number(level):
        level = int(level)
    message = _first_value(record, _JSON_MESSAGE_KEYS)
    host, program = _first_value(record, _JSON_HOST_KEYS), _first_value(record, _JSON_PROGRAM_KEYS)
    return Head(
        stamp,
        host if isinstance(host, str) else None,
        program if isinstance(program, str) else None,
        severity_number(level) if isinstance(level, int) else severity_word(str(level)) if level else None,
        line if message is None else str(message),
    )


# What separates the timestamp from the message in the generic format.
_MESSAGE_SEPARATORS = " \t])>:,|-"


def parse_timestamped(line: str) -> Head | None:
    match = find_timestamp(line)
    if match is None:
        return None
    return Head(parse_stamp(match.groupdict()), message=line[match.end() :].lstrip(_MESSAGE_SEPARATORS))


# Detection breaks ties in favour of the earlier, more specific format. Parsing tries the detected format first,
# then the other specific ones, then the generic one, so that a file mixing formats still gets every timestamp.
FORMAT_PARSERS: dict[str, Callable[[str], Head | None]] = {
    "syslog-rfc5424": _parse_rfc5424,
    "journal": _parse_journal,
    "syslog-rfc3164": _parse_rfc3164,
    "apache-error": _parse_apache_error,
    "access-combined": _parse_access,
    "jsonl": _parse_jsonl,
    "timestamped": parse_timestamped,
}
# Lines that only ever continue a record: indented lines, the unindented lines of Python tracebacks and Java stack
# traces, the level line of java.util.logging's two-line records, and closing brackets of pretty-printed bodies.
CONTINUATION = re.compile(
    r"\s|Traceback \(most recent call last\)|Caused by: |During handling of the above exception"
    r"|The above exception was the direct cause|(?:SEVERE|WARNING|INFO|CONFIG|FINE|FINER|FINEST): "
    r"|(?:[\w$]+\.)*[\w$]*(?:Error|Exception|Throwable)(?::|$)|[\]})]+,?$"
)
_DETECTION_SAMPLE = 200
_DETECTION_MAJORITY = 0.6


def detect_log_format(text: str) -> str | None:
    """Name of the format that most sampled lines parse as, or None when no format covers a clear majority."""
    lines = (line for line in text.splitlines() if line.strip() and not CONTINUATION.match(line))
    sample = [line for _, line in zip(range(_DETECTION_SAMPLE), lines)]
    if not sample:
        return None
    scores = {name: sum(parse(line) is not None for line in sample) for name, parse in FORMAT_PARSERS.items()}
    if scores["journal"]:
        # journalctl's default "short" output is plain BSD syslog; its markers and precise stamps tell it apart.
        scores["journal"] = max(scores["journal"], scores["syslog-rfc3164"])
    # The generic format parses a superset of the others, so it only wins when no specific format has a majority.
    generic = scores.pop("timestamped")
    best = max(scores, key=scores.get)  # first of equals, i.e. the more specific format
    for name, score in ((best, scores[best]), ("timestamped", generic)):
        if score >= _DETECTION_MAJORITY * len(sample):
            return name
    return None
