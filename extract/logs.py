"""Log files: detect the format from the content, parse records, and group records into windows for ingestion.

A record starts at a line that carries a record header (a timestamp, a JSON object with one, or a syslog
"host program[pid]:" prefix without a time, as journal entries are exported). In a file whose format was detected,
any other line continues the record above it, so stack traces, Java's two-line records and pretty-printed bodies
stay whole; indented lines and the lines of tracebacks always continue. Nothing is dropped: text before the first
header, and lines of a file with no recognisable format, become records without a timestamp.

Pure Python and free of Django, so scripts and benchmarks can use it directly.
"""

import bisect
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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
    # The remote party of the event (client address or hostname), as opposed to `host`, the machine that wrote it.
    peer: str | None = None


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
# Only words that read as a level: bracketed ([error], [core:warn], <warn>), upper case (ERROR, NOTICE[12]), a
# lead-in followed by a colon (sshd's "error: ..."), or a level= key. A bare "failed" or "error" in a sentence is
# not a level, so most sshd and postfix lines have none.
_LEVEL_TOKEN = re.compile(
    rf"(?<![\w-])(?:[\[<(](?:[\w-]*:)?(?i:(?P<bracketed>{_WORDS}))\d?[\]>)]|(?P<upper>{_WORDS.upper()})(?![\w-])"
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
_ZONE = rf"\s?(?-i:(?P<z>Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d|{_ZONE_NAMES}))(?!\w)"
_DATE = rf"(?P<Y>\d{{4}})(?P<sep>[-/.:]){_MM}(?P=sep){_DD}"
_ISO = rf"{_DATE}(?:T|\s+|-){_HMS}(?:{_ZONE})?"
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


# --- remote peers -----------------------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|[01]?\d?\d)"  # leading zeros as written (192.030.0.6) are kept
_IPV4 = rf"(?:::ffff:)?{_OCTET}(?:\.{_OCTET}){{3}}"  # IPv4-mapped IPv6 (::ffff:192.0.2.1) reads as IPv4
_IPV6 = r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,8}"  # checked with ipaddress; may end in an unbracketed :port
_HOSTNAME = r"(?:[A-Za-z0-9](?:[\w-]*[A-Za-z0-9])?\.)+[A-Za-z][\w-]*[A-Za-z0-9]|localhost"
# One address as written: quoted, bracketed ([2001:db8::1]:22, [IPv6:2001:db8::1]), with a port (:22, /5060 after a
# transport prefix as in "IPV4/UDP/192.0.2.1/5060", or -1780 as sshd's "Remote: 192.0.2.1-1780" writes it), and not
# part of a longer name or number.
_ADDRESS = (
    rf"['\"]?(?:IPV[46]/\w+/)?\[?(?:IPv6:)?(?:{_IPV4}|{_IPV6}|{_HOSTNAME})\]?(?:[:/]\d{{1,5}}|(?<=\d)-\d{{1,5}})?"
    rf"(?![\w.-]*\w)"
)
# Where a message names the remote party: after a key ("from", "client", "for '192.0.2.1'", "from IP 192.0.2.1",
# "rhost=", "ip=", "relay=", "remote...=", 'user'@'host'), and a name or (HELO name) followed by the address it
# came from ("unknown[192.0.2.1]", "mail.example.com (helo) [192.0.2.1]"), which then stands for the name. A key
# right after "=" is a value ("ruser=rhost=..."), not a key.
_PEER_KEYED = re.compile(
    rf"(?:(?<![\w=-])(?:(?P<key>from|client|peer|for)(?:\s*[=:]\s*|\s+)(?:IP\s+)?"
    rf"|(?P<field>remote[\w-]*|rhost|rip|ip|relay|host|addr|address|src)\s*[=:]\s*)|(?<=['\"])@)?"
    rf"(?:(?<![\w.-])(?:(?:{_HOSTNAME}|unknown)(?:\s?\([^()\s]*\))?|\([^()\s]*\))\s?\[(?P<resolved>[^\]\s]+)\]"
    rf"|(?<=[\s=:@])(?P<address>{_ADDRESS}))",
    re.IGNORECASE,
)
# Failing that, the first IP address that is not a loopback or unspecified one (a server's own or bind address)
# and not part of a version number, a path, a network (/24) or a hostname.
_VERSION_LEAD = re.compile(r"\b(?:version|ver|release|rev|build|v)[\s:=]*$", re.IGNORECASE)
_PEER_ANY = re.compile(rf"(?<![\w.:/-])\[?(?:IPv6:)?(?:{_IPV4}|{_IPV6})\]?(?::\d{{1,5}})?(?![\w.-]*\w|/\d)", re.I)


def _address(text: str, *, hostnames: bool = True) -> str | None:
    """The IP address (or, where `hostnames`, the hostname) written in `text`, without quotes, brackets, port."""
    text = re.sub(r"^['\"]?(?:IPV[46]/\w+/)?\[?(?:IPv6:)?|\]?(?:/\d+)?['\"]?$", "", text, flags=re.IGNORECASE)
    ipv4 = re.fullmatch(rf"(?:::ffff:)?({_OCTET}(?:\.{_OCTET}){{3}})\]?(?:[:-]\d{{1,5}})?", text, re.IGNORECASE)
    if ipv4:
        return ipv4[1]
    for candidate in (text, re.sub(r"\]?:\d{1,5}$", "", text)):
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        return candidate
    name = re.fullmatch(rf"({_HOSTNAME})(?::\d{{1,5}})?", text) if hostnames else None
    return name[1] if name else None


def _is_own_address(ip: str) -> bool:
    if "." in ip:
        ip = ".".join(str(int(octet)) for octet in ip.split("."))  # ipaddress refuses leading zeros
    address = ipaddress.ip_address(ip)
    return address.is_loopback or address.is_unspecified


# Oracle Communications Messaging Server's transport field, tr="TCP|local ip|local port|remote ip|remote port": the
# peer is the remote half, at a fixed position and with no key in front of it.
_CONNECTION_TUPLE = re.compile(rf"\b(?:TCP|UDP)\|(?:{_IPV4}|{_IPV6})\|\d+\|(?P<remote>{_IPV4}|{_IPV6})\|\d+\b")
# key=value tokens. An address whose key follows the non-empty value of a user-name key may be part of that value:
# a user name can hold spaces, "=" and addresses ("ruser=test rhost=192.0.2.151 rhost=192.0.2.1" is user
# "test rhost=192.0.2.151"), so such an address only counts when the message offers no other.
_KEY_TOKEN = re.compile(r"(?<![\w.-])([A-Za-z_][\w.-]*)=")
_USER_KEYS = frozenset({"user", "ruser", "username", "login", "logname", "acct", "account", "sasl_username"})
# SIP URIs ('"28" <sip:28@192.0.2.100>') name whom the client claims to be; the addresses in them are the client's
# to choose, unlike the one the server saw the request come from ("failed for '192.0.2.1:7998'").
_CLIENT_IDENTITY = re.compile(r"<sips?:[^>]*>", re.IGNORECASE)
_BLANK = re.compile(r"\s*")
_CLIENT_TEXT_HINT = re.compile(rf"(?<![\w.-])(?:{'|'.join(sorted(_USER_KEYS))})=|<sips?:", re.IGNORECASE)
# An address followed by ": " (after its port and protocol) ends the message's own part, and what follows quotes
# the client: sshd's "Failed password for root from 192.0.2.1 port 22 ssh2: <details>".
_DETAILS_FOLLOW = re.compile(r"(?:\s+port\s+\d+)?(?:\s+ssh\d?)?:\s")
# An own address (loopback, 0.0.0.0) right after "on", "at" or "to", or later in a clause about listening or binding,
# is where a server listens or connects to (PostgreSQL's 'listening on IPv4 address "127.0.0.1", port 5432').
_LOCAL_LEAD = re.compile(r"\b(?:listen\w*|bind|bound)\b[^,;]*$|\b(?:on|at|to)\W*$", re.IGNORECASE)


class _ClientText:
    """Where a message may hold text the client wrote (see _KEY_TOKEN and _CLIENT_IDENTITY)."""

    def __init__(self, message: str):
        self.message = message
        self.keys = list(_KEY_TOKEN.finditer(message))
        self.key_starts = [key.start() for key in self.keys]
        self.identities = [identity.span() for identity in _CLIENT_IDENTITY.finditer(message)]

    def holds(self, position: int) -> bool:
        if any(begin <= position < end for begin, end in self.identities):
            return True
        index = bisect.bisect_left(self.key_starts, position) - 1  # the last key=value token before `position`
        if index < 0:
            return False
        key = self.keys[index]
        return key[1].lower() in _USER_KEYS and _BLANK.match(self.message, key.end(), position).end() < position


def _message_peer(message: str) -> str | None:
    """The remote party a log message names, or None.

    In order: a connection tuple (_CONNECTION_TUPLE); an address after a key (_PEER_KEYED); the first bare IP
    address that is not an own one (_PEER_ANY); and only then 0.0.0.0 or a loopback address, the last resort of
    a message that names nothing else.

    Attackers choose some of the text a server logs (user names, request lines, SIP From headers), and fail2ban's
    samples show them writing a decoy address there ("Failed password for invalid user from 10.10.1.1 from
    127.0.0.1 port 58946", 'user "test": password mismatch, client: 127.0.0.1, ...", client: 192.0.2.2'). A
    message names its remote party under one key, and its fixed layout follows the values it quotes, so: the key
    that names the first trusted address is the message's key, and its last occurrence is taken, up to one that
    ends the message's own part (_DETAILS_FOLLOW). Trusted means not inside a user-name value or a SIP URI
    (_ClientText). 0.0.0.0 is where a server listens rather than a client, so it comes last.
    """
    connection = _CONNECTION_TUPLE.search(message) if "|" in message else None
    if connection:
        return _address(connection["remote"])
    client_text: _ClientText | bool | None = None
    trusted: list[tuple[str, str]] = []  # (key, peer)
    doubtful, unspecified = None, None
    for match in _PEER_KEYED.finditer(message):
        if match["resolved"]:
            peer = _address(match["resolved"], hostnames=False)
        elif match["key"] or match["field"] or match[0].startswith("@"):  # a bare address is left to _PEER_ANY
            peer = _address(match["address"], hostnames=(match["key"] or "").lower() != "for")
        else:
            continue
        if not peer:
            continue
        if not peer.strip("0.:"):  # 0.0.0.0, ::
            unspecified = unspecified or peer
            continue
        if client_text is None:  # only messages that name an address pay for this
            client_text = _ClientText(message) if _CLIENT_TEXT_HINT.search(message) else False
        if client_text and client_text.holds(match.start()):
            doubtful = doubtful or peer
            continue
        key = (match["key"] or match["field"] or ("@" if match[0].startswith("@") else "[]")).lower()
        trusted.append((key, peer))
        if key == trusted[0][0] and _DETAILS_FOLLOW.match(message, match.end()):
            break
    if trusted:
        return next(peer for key, peer in reversed(trusted) if key == trusted[0][0])
    if doubtful:
        return doubtful
    own = None
    for match in _PEER_ANY.finditer(message):
        if _VERSION_LEAD.search(message, max(0, match.start() - 10), match.start()):
            continue
        peer = _address(match[0], hostnames=False)
        # an IPv6 lookalike without a digit is a word such as "cafe::babe" (C++ scopes have no hex-only names)
        if not peer or not any(c.isdigit() for c in peer):
            continue
        if not _is_own_address(peer):
            return peer
        if own is None and not _LOCAL_LEAD.search(message, max(0, match.start() - 40), match.start()):
            own = peer
    return unspecified or own


# --- one parser per format --------------------------------------------------------------------------------------


class _Head(NamedTuple):
    """What a record's first line says."""

    stamp: _Stamp | None
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
    re.compile(rf"{_PRI}{_MON}\s+(?P<d>[0-2]?\d|3[01])(?:\s+(?P<Y>\d{{4}}))?\s+{_HMS}", re.IGNORECASE),
    re.compile(rf"{_PRI}{_DATE}T{_HMS}(?:{_ZONE})?"),  # rsyslog's high-precision file format
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


def _parse_rfc5424(line: str) -> _Head | None:
    match = _RFC5424.match(line)
    if not match:
        return None
    stamp = None if match["ts"] == "-" else _stamp_of_text(match["ts"])
    if stamp is None and match["ts"] != "-":
        return None
    return _Head(stamp, _nil(match["host"]), _nil(match["app"]), _syslog_pri_severity(match["pri"]),
                 match["message"] or "", pid=_nil(match["procid"]))


def _parse_rfc3164(line: str) -> _Head | None:
    for iso, pattern in enumerate(_SYSLOG_STAMPS):
        stamp = pattern.match(line)
        tail = _SYSLOG_TAIL.match(line, stamp.end()) if stamp else None
        if not tail or (iso and not tail["tag"]):  # an ISO timestamp alone does not make a syslog line
            continue
        level = tail["level"] or ""
        severity = _syslog_pri_severity(stamp["pri"]) or (
            _severity_number(int(level)) if level.isdigit() else _severity_word(level)
        )
        return _Head(_stamp(stamp.groupdict()), tail["host"], tail["tag"], severity, tail["message"],
                     pid=tail["pid"])
    return None


def _parse_untimed_syslog(line: str) -> _Head | None:
    match = _UNTIMED_SYSLOG.match(line)
    if not match:
        return None
    if match["tag"].isupper() and _severity_word(match["tag"]):  # a level and a thread id, not a program
        return _Head(None, match["host"], None, _severity_word(match["tag"]), match["message"])
    return _Head(None, match["host"], match["tag"], None, match["message"], pid=match["pid"])


def _parse_journal(line: str) -> _Head | None:
    if _JOURNAL_MARKER.match(line):
        return _Head(None, message=line)
    return _parse_rfc3164(line) if _JOURNAL_STAMP.match(line) else None


def _parse_apache_error(line: str) -> _Head | None:
    match = _APACHE_ERROR.match(line)
    if not match or not _severity_word(match["level"]):
        return None
    stamp = _stamp_of_text(match["ts"])
    if stamp is None:
        return None
    return _Head(stamp, None, match["module"], _severity_word(match["level"]), match["message"],
                 _address(match["client"] or ""))


def _parse_access(line: str) -> _Head | None:
    match = _ACCESS.match(line)
    stamp = _stamp_of_text(match["ts"].strip()) if match else None
    if stamp is None:
        return None
    status = _HTTP_STATUS.search(match["message"])
    code = int(status["status"]) if status else 0
    return _Head(stamp, severity="error" if code >= 500 else "warning" if code >= 400 else "info",
                 message=match["message"], peer=_address(match["client"]))


def _json_stamp(value: object) -> _Stamp | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, (int, float)) and 0 < value < 1e20:
        # seconds, milliseconds, microseconds (journald) or nanoseconds, told apart by magnitude
        scale = next(scale for scale in (1, 1e3, 1e6, 1e9) if value / scale < 1e11)
        moment = datetime.fromtimestamp(value / scale, UTC)
        return _Stamp(moment.year, moment.month, moment.day, moment.timetz().replace(tzinfo=None), UTC)
    return _stamp_of_text(value) if isinstance(value, str) else None


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
        line if message is None else str(message),
    )


def _parse_timestamped(line: str) -> _Head | None:
    match = _find_timestamp(line)
    if match is None:
        return None
    return _Head(_stamp(match.groupdict()), message=line[match.end():].lstrip(_MESSAGE_SEPARATORS))


# Detection breaks ties in favour of the earlier, more specific format. Parsing tries the detected format first,
# then the other specific ones, then the generic one, so that a file mixing formats still gets every timestamp.
_FORMATS: dict[str, Callable[[str], _Head | None]] = {
    "syslog-rfc5424": _parse_rfc5424,
    "journal": _parse_journal,
    "syslog-rfc3164": _parse_rfc3164,
    "apache-error": _parse_apache_error,
    "access-combined": _parse_access,
    "jsonl": _parse_jsonl,
    "timestamped": _parse_timestamped,
}
# Lines that only ever continue a record: indented lines, the unindented lines of Python tracebacks and Java stack
# traces, the level line of java.util.logging's two-line records, and closing brackets of pretty-printed bodies.
_CONTINUATION = re.compile(
    r"\s|Traceback \(most recent call last\)|Caused by: |During handling of the above exception"
    r"|The above exception was the direct cause|(?:SEVERE|WARNING|INFO|CONFIG|FINE|FINER|FINEST): "
    r"|(?:[\w$]+\.)*[\w$]*(?:Error|Exception|Throwable)(?::|$)|[\]})]+,?$"
)
_DETECTION_SAMPLE = 200
_DETECTION_MAJORITY = 0.6


def detect_log_format(text: str) -> str | None:
    """Name of the format that most sampled lines parse as, or None when no format covers a clear majority."""
    lines = (line for line in text.splitlines() if line.strip() and not _CONTINUATION.match(line))
    sample = [line for _, line in zip(range(_DETECTION_SAMPLE), lines)]
    if not sample:
        return None
    scores = {name: sum(parse(line) is not None for line in sample) for name, parse in _FORMATS.items()}
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


# Explicit connection or session ids: OpenLDAP's "conn=1022", Dovecot's "session=<n4JLdHNVngZGpV2j>".
_SESSION_ID = re.compile(r"(?<![\w-])(?:conn|session)=<?(?P<id>[\w.:+/-]+)>?", re.IGNORECASE)
# How long after the last line that named it a session's peer is still inherited.
_SESSION_SPAN = timedelta(minutes=10)


class _Sessions:
    """Peers of the records that name none, taken from earlier records of the same session.

    Many lines about a client do not repeat its address: sshd writes "Connection from 192.0.2.3 port 39678" and
    then, in the same process, "fatal: Unable to negotiate a key exchange method [preauth]"; slapd writes the
    address once per connection ("conn=1022 fd=21 ACCEPT from IP=192.0.2.1:45011") and then only "conn=1022".
    fail2ban ties such lines together by process id or connection id, and so does this: a record that names no
    peer inherits the one most recently named by a record of the same session, i.e. with the same connection id
    if the record carries one, otherwise the same host, program and process id. Records without a process or
    connection id (most application logs) are no session and inherit nothing. A process that serves many clients
    in turn would hand its last client to unrelated lines, and ids are reused, so the peer expires _SESSION_SPAN
    after the last line that named it.
    """

    def __init__(self) -> None:
        self.known: dict[tuple, tuple[str, datetime | None]] = {}

    def peer(self, head: _Head, timestamp: datetime | None, peer: str | None) -> str | None:
        session = _SESSION_ID.search(head.message)
        if session:
            key: tuple = (head.host, head.program, "session", session["id"])
        elif head.pid and head.program:
            key = (head.host, head.program, head.pid)
        else:
            return peer
        if peer:
            self.known[key] = (peer, timestamp)
            return peer
        known, seen = self.known.get(key, (None, None))
        if known and (timestamp is None or seen is None or abs(timestamp - seen) <= _SESSION_SPAN):
            return known
        return None


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

    Each record's `peer` is the remote party its message names (see _message_peer) or, failing that, the one named
    earlier in the same session (see _Sessions).
    """
    if log_format is not None and log_format not in _FORMATS:
        raise ValueError(f"unknown log format {log_format!r}")
    log_format = log_format or detect_log_format(text)
    preferred = _FORMATS.get(log_format)
    # Specific formats before the generic one, so that lines of another format in the file keep host and program.
    parsers = sorted(_FORMATS.values(), key=lambda parse: (parse is _parse_timestamped, parse is not preferred))
    clock = _Clock(default_timezone, reference_year, now)

    spans: list[list] = []  # [head, line number, start, end of the first line, end]
    offset = 0
    for number, raw in enumerate(text.split("\n"), 1):
        start, offset = offset, offset + len(raw) + 1
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        end = start + len(line)
        continuation = _CONTINUATION.match(line)
        head = None if continuation else next(filter(None, (parse(line) for parse in parsers)), None)
        if head is None and not continuation:
            head = _parse_untimed_syslog(line)  # a record of its own, though it has no time
        if head is None and spans and (log_format or continuation):
            spans[-1][4] = end
        else:
            spans.append([head or _Head(None, message=line), number, start, end, end])

    records = []
    sessions = _Sessions()
    for head, number, start, first_line_end, end in spans:
        message = head.message + text[first_line_end:end]
        timestamp = clock.resolve(head.stamp)
        peer = head.peer or _message_peer(head.message)
        if peer is None and end > first_line_end:
            # The first line is the event; the lines that continue it (a trace, a dump) count when it names nobody.
            peer = _message_peer(message)
        records.append(LogRecord(
            timestamp=timestamp, host=head.host, program=head.program,
            severity=head.severity or _keyword_severity(message), message=message, text=text[start:end],
            char_start=start, char_end=end, line_number=number, peer=sessions.peer(head, timestamp, peer),
        ))
    return records


# --- windows ----------------------------------------------------------------------------------------------------

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
