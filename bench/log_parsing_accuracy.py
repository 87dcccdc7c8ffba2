"""How often extract.logs gets the time and remote peer of a record right, measured on fail2ban's samples.

fail2ban (apt-get install fail2ban) ships ~90 real log excerpts in which many lines are labelled by the comment
line above them, `# failJSON: {"time": "2005-06-21T16:47:48", "host": "192.0.2.1", ...}`. fail2ban's own test
(fail2ban/tests/samplestestcase.py) reads them as follows, and so does this script:

* the labelled line is the line right after the comment, whatever it holds;
* "time" is local time in TZ=CET-01CEST-02,M3.5.0,M10.5.0 (fail2ban/tests/utils.py), compared to the second
  (fail2ban drops fractions); "time": null or no "time" means fail2ban checks no time for that line;
* times without a year are completed against fail2ban's fixed test clock, 2005-08-14 12:00 CEST: the year that
  puts them at most a day after it;
* "host" is what fail2ban's filter captured as <HOST>: the remote address to ban, not the machine that wrote the
  line, so it is compared with LogRecord.peer (LogRecord.host is the writing machine). Two labels give it as
  "ip4"/"ip6" instead and count the same. Every labelled line with a host counts once, whether or not fail2ban's
  filter matches it ("match": false) and whether the host is an address or a name ("example.com", "localhost");
* LogRecord.peer comes from generic rules on each record plus a pass that hands a session's peer to its later
  lines (same process or connection id), much as fail2ban's filters tie lines together by pid; the parser never
  sees the failJSON comments, which are removed before parsing.

Comment lines are fail2ban's annotations, not log content, so they are removed before parsing (fail2ban skips
them too); a labelled line that is part of a multi-line record (Java's two-line format, Erlang reports) is judged
by the record it belongs to.

    .venv/bin/python bench/log_parsing_accuracy.py [LOG_DIR]
"""

import bisect
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from extract.logs import LogRecord, detect_log_format, parse_log

FAIL2BAN_LOGS = Path("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs")
FAIL2BAN_NOW = datetime.fromtimestamp(1124013600, UTC)  # fail2ban.tests.utils.TEST_NOW
_DIRECTIVE = re.compile(r"#+ ?(failJSON|(?:file|filter)Options|addFILE):(.+)")


class Fail2banTestZone(tzinfo):
    """POSIX TZ "CET-01CEST-02,M3.5.0,M10.5.0", which fail2ban's tests run under: summer time from 02:00 on the last
    Sunday of March to 02:00 summer time on the last Sunday of October, in every year (not quite Europe/Zurich,
    which switches back an hour later). The skipped hour in March reads as standard time, as time.mktime reads it;
    the repeated hour in October, which mktime resolves either way, as summer time."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=1) + self.dst(dt)

    def dst(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return timedelta(0)
        wall = dt.replace(tzinfo=None)
        begins, ends = _last_sunday(dt.year, 3).replace(hour=3), _last_sunday(dt.year, 10).replace(hour=2)
        return timedelta(hours=1) if begins <= wall < ends else timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "CEST" if self.dst(dt) else "CET"


def _last_sunday(year: int, month: int) -> datetime:
    last_day = datetime(year, month + 1, 1) - timedelta(days=1)
    return last_day - timedelta(days=(last_day.weekday() + 1) % 7)


FAIL2BAN_ZONE = Fail2banTestZone()


@dataclass(frozen=True)
class Label:
    file: str
    line_number: int  # in the original sample file
    line: str
    time: datetime | None
    host: str | None


@dataclass(frozen=True)
class Mismatch:
    label: Label
    field: str
    got: object


@dataclass
class AccuracyReport:
    files: int = 0
    labelled_lines: int = 0
    time_total: int = 0
    time_matches: int = 0
    host_total: int = 0  # labelled with failJSON's "host", compared with LogRecord.peer
    host_matches: int = 0
    # labelled lines that are no log record at all (none found in these samples; kept so the count is visible)
    excluded: list[Label] = field(default_factory=list)
    per_format: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def time_accuracy(self) -> float:
        return self.time_matches / self.time_total

    @property
    def peer_accuracy(self) -> float:
        return self.host_matches / self.host_total


def load_sample(path: Path, name: str) -> tuple[str, list[Label], dict[int, int]]:
    """The log without fail2ban's comment lines, its labels, and original line number -> line number in it."""
    lines = path.read_text(encoding="utf-8").split("\n")
    kept: list[str] = []
    labels: list[Label] = []
    line_map: dict[int, int] = {}
    pending: dict | None = None
    for number, line in enumerate(lines, 1):
        directive = _DIRECTIVE.match(line)
        if pending is None and (directive or line.startswith("#")):
            if directive and directive[1] == "failJSON":
                pending = json.loads(directive[2])
            continue
        kept.append(line)
        line_map[number] = len(kept)
        if pending is not None:
            time = pending.get("time")
            labels.append(Label(name, number, line, _label_time(time) if time else None, _label_host(pending)))
            pending = None
    return "\n".join(kept), labels, line_map


def _label_host(label: dict) -> str | None:
    # A few labels name the captured address by family instead ("ip4": "192.0.2.10"); they count like "host".
    return next((label[key] for key in ("host", "ip4", "ip6") if label.get(key) is not None), None)


def _label_time(text: str) -> datetime:
    # fail2ban's own parsing, which also takes "2005-03-7T02:09:33"
    for pattern in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=FAIL2BAN_ZONE)
        except ValueError:
            continue
    raise ValueError(f"unexpected failJSON time {text!r}")


def _record_at(records: list[LogRecord], line_number: int) -> LogRecord | None:
    index = bisect.bisect_right([record.line_number for record in records], line_number) - 1
    if index < 0:
        return None
    record = records[index]
    return record if line_number <= record.line_number + record.text.count("\n") else None


def _same_second(got: datetime | None, expected: datetime) -> bool:
    return got is not None and int(got.timestamp()) == int(expected.timestamp())


def measure(log_dir: Path = FAIL2BAN_LOGS) -> AccuracyReport:
    report = AccuracyReport()
    for path in sorted(p for p in log_dir.rglob("*") if p.is_file()):
        text, labels, line_map = load_sample(path, str(path.relative_to(log_dir)))
        report.files += 1
        log_format = detect_log_format(text) or "none"
        records = parse_log(text, default_timezone=FAIL2BAN_ZONE, now=FAIL2BAN_NOW)
        counts = report.per_format[log_format]
        for label in labels:
            report.labelled_lines += 1
            record = _record_at(records, line_map[label.line_number])
            if record is None:
                report.excluded.append(label)
                continue
            if label.time is not None:
                report.time_total += 1
                counts[1] += 1
                if _same_second(record.timestamp, label.time):
                    report.time_matches += 1
                    counts[0] += 1
                else:
                    report.mismatches.append(Mismatch(label, "time", record.timestamp))
            if label.host is not None:
                report.host_total += 1
                counts[3] += 1
                if record.peer == label.host:
                    report.host_matches += 1
                    counts[2] += 1
                else:
                    report.mismatches.append(Mismatch(label, "host", record.peer))
    return report


def _ratio(matches: int, total: int) -> str:
    return f"{matches}/{total} ({100 * matches / total:.1f}%)" if total else "0/0"


def main() -> None:
    log_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else FAIL2BAN_LOGS
    if not log_dir.is_dir():
        sys.exit(f"{log_dir} not found: apt-get install fail2ban")
    report = measure(log_dir)
    print(f"files: {report.files}")
    print(f"labelled lines: {report.labelled_lines} (excluded as not log records: {len(report.excluded)})")
    print(
        f"time matches: {_ratio(report.time_matches, report.time_total)}"
        f" ({report.labelled_lines - len(report.excluded) - report.time_total} labelled lines give no time)"
    )
    print(
        f"remote peer (failJSON host) matches: {_ratio(report.host_matches, report.host_total)}"
        " (LogRecord.peer against the address fail2ban bans)"
    )
    print("\nper detected format (files' format):")
    for name, (time_ok, time_all, host_ok, host_all) in sorted(report.per_format.items()):
        print(f"  {name:16} time {_ratio(time_ok, time_all):22} peer {_ratio(host_ok, host_all)}")
    time_misses = [m for m in report.mismatches if m.field == "time"]
    host_misses = [m for m in report.mismatches if m.field == "host"]
    for title, misses in (("time", time_misses), ("remote peer", host_misses)):
        print(f"\nfirst {min(20, len(misses))} of {len(misses)} {title} mismatches:")
        for miss in misses[:20]:
            expected = miss.label.time.isoformat() if title == "time" else miss.label.host
            got = miss.got.isoformat() if isinstance(miss.got, datetime) else miss.got
            print(f"  {miss.label.file}:{miss.label.line_number}: expected {expected}, got {got}")
            print(f"    {miss.label.line[:140]}")
    for label in report.excluded:
        print(f"excluded {label.file}:{label.line_number}: {label.line[:140]}")


if __name__ == "__main__":
    main()
