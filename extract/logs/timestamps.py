"""Timestamps as logs write them: found in a line, read as written, completed (year, date, zone) in order."""

import re
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import NamedTuple

_ZONE_OFFSETS = {
    "UTC": 0,
    "GMT": 0,
    "UT": 0,
    "Z": 0,
    "WET": 0,
    "WEST": 60,
    "BST": 60,
    "CET": 60,
    "CEST": 120,
    "MET": 60,
    "MEST": 120,
    "EET": 120,
    "EEST": 180,
    "MSK": 180,
    "EST": -300,
    "EDT": -240,
    "CST": -360,
    "CDT": -300,
    "MST": -420,
    "MDT": -360,
    "PST": -480,
    "PDT": -420,
    "AKST": -540,
    "AKDT": -480,
    "HST": -600,
    "JST": 540,
    "AEST": 600,
    "AEDT": 660,
}
_ZONE_NAMES = "|".join(sorted(_ZONE_OFFSETS, key=len, reverse=True))
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

MON = rf"(?P<b>{'|'.join(_MONTHS)})[a-z]*\.?"  # Jan, June, sept.
_MM = r"(?P<m>0[1-9]|1[0-2])"
_DD = r"(?P<d>0[1-9]|[12]\d|3[01])"
HMS = r"(?P<H>[01]?\d|2[0-3]):(?P<M>[0-5]\d):(?P<S>[0-5]\d|60)(?:[.,](?P<f>\d{1,9}))?"
ZONE = rf"\s?(?-i:(?P<z>Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d|{_ZONE_NAMES}))(?!\w)"
DATE = rf"(?P<Y>\d{{4}})(?P<sep>[-/.:]){_MM}(?P=sep){_DD}"
_ISO = rf"{DATE}(?:T|\s+|-){HMS}(?:{ZONE})?"
_CTIME = (
    rf"(?:(?-i:(?P<zp>{_ZONE_NAMES}))\s+)?(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?{MON}[ -]+"
    rf"(?P<d>[0-2]?\d|3[01])(?:,?\s+(?P<Y>\d{{4}}))?\s+{HMS}(?:\s*(?P<p>[ap]m))?(?:\s+(?P<Y2>\d{{4}})(?![\d:]))?"
    rf"(?:{ZONE})?"
)


def _timestamp_pattern(body: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.:]){body}(?!\d)", re.IGNORECASE)


# Shapes found in real logs, tried at every early position of a line; the earliest match wins.
_TIMESTAMPS = [
    _timestamp_pattern(_ISO),  # ISO 8601, Python logging, nginx/MySQL/stunnel YYYY/mm/dd, YYYY.mm.dd
    _timestamp_pattern(_CTIME),  # syslog, ctime, Java's "apr 15, 2013 8:34:08 PM", monit's "[PDT Apr 16 ...]"
    _timestamp_pattern(rf"{MON}-{_DD}-(?P<y>\d\d)\s+{HMS}"),  # Apr-07-13 07:08:36
    _timestamp_pattern(rf"{_DD}(?P<sep>[-/ ]){MON}(?P=sep)(?P<Y>\d{{4}})[: ]+{HMS}(?:{ZONE})?"),  # Apache, BIND
    _timestamp_pattern(rf"{_DD}(?P<sep>[-.]){_MM}(?P=sep)(?P<Y>\d{{4}})\s+{HMS}(?:{ZONE})?"),  # dd-mm-YYYY
    _timestamp_pattern(rf"{_MM}/{_DD}/(?P<Y>\d{{4}})(?:\s+-)?\s+{HMS}(?:{ZONE})?"),  # US mm/dd/YYYY
    _timestamp_pattern(rf"(?P<y>\d\d){_MM}{_DD}\s+{HMS}"),  # MySQL 5.5: 130324  0:04:00
    _timestamp_pattern(rf"{_MM}-{_DD}\s+{HMS}"),  # FreeSWITCH: 08-03 07:56:53.026292
    _timestamp_pattern(r"(?P<epoch>1\d{9})(?:\.(?P<f>\d{1,9}))?"),  # squid, audit(...), [1387288694]
    _timestamp_pattern(r"@(?P<tai>4000000[0-9a-f]{9})[0-9a-f]{8}"),  # daemontools' TAI64N
]
_TIME_ONLY = re.compile(rf"\[?{HMS}(?!\d)")  # logback's default HH:mm:ss.SSS, only at the very start
# A header's timestamp sits at the start of the line or after a short prefix such as "[pid:tid] ", "<W>", "t="
# or "type=USER_LOGIN msg=audit(" -- but never after "word: ", which means the message has begun.
_TIMESTAMP_REACH = 40


class Stamp(NamedTuple):
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


def _month_number(abbreviation: str) -> int:
    """By the patterns' own case-insensitive matching, under which "ſep" (long s) is "sep" though it lower-cases to
    itself."""
    return next(number for number, month in enumerate(_MONTHS, 1) if re.fullmatch(month, abbreviation, re.IGNORECASE))


def parse_stamp(fields: dict[str, str | None]) -> Stamp:
    if fields.get("epoch") or fields.get("tai"):
        seconds = int(fields["epoch"]) if fields.get("epoch") else int(fields["tai"], 16) - 2**62
        moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=_fraction(fields.get("f")))
        return Stamp(moment.year, moment.month, moment.day, moment.timetz().replace(tzinfo=None), UTC)
    hour = int(fields["H"])
    if fields.get("p"):
        hour = hour % 12 + (12 if fields["p"].lower() == "pm" else 0)
    clock = time(hour, int(fields["M"]), min(int(fields["S"]), 59), _fraction(fields.get("f")))
    year = fields.get("Y") or fields.get("Y2")
    if fields.get("y"):
        year = 2000 + int(fields["y"])
    month = int(fields["m"]) if fields.get("m") else None
    if fields.get("b"):
        month = _month_number(fields["b"][:3])
    day = int(fields["d"]) if fields.get("d") else None
    return Stamp(int(year) if year else None, month, day, clock, _zone(fields.get("z") or fields.get("zp")))


def find_timestamp(line: str) -> re.Match[str] | None:
    head = line[: _TIMESTAMP_REACH + 64]
    best = None
    for pattern in _TIMESTAMPS:
        match = pattern.search(head)
        if match and match.start() <= _TIMESTAMP_REACH and (best is None or match.start() < best.start()):
            best = match
    if best is None or ": " in line[: best.start()]:
        return _TIME_ONLY.match(line)
    return best


def stamp_of_text(value: str) -> Stamp | None:
    match = find_timestamp(value)
    return parse_stamp(match.groupdict()) if match and match.start() == 0 else None


class Clock:
    """Completes timestamps that lack a year or a date, in the order records appear."""

    def __init__(self, default_timezone: tzinfo, reference_year: int | None, now: datetime | None):
        self.default_timezone = default_timezone
        self.now = now or datetime.now(UTC)
        self.year = reference_year
        self.last_month: int | None = None

    def resolve(self, stamp: Stamp | None) -> datetime | None:
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

    def _yearless(self, stamp: Stamp, tz: tzinfo) -> datetime:
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
