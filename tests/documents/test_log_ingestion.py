"""Log files as first-class sources: detected by content, chunked into time windows, filterable in retrieval."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kb.documents.models import Chunk, DocumentVersion
from kb.search.selectors import PassageFilters, passages_search_for_user
from tests.factories import ingested_document, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db

FAIL2BAN_LOGS = Path("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs")

SYSLOG = (
    "\n".join(
        [
            f"Mar  3 10:0{minute}:1{second} web-1 sshd[411]: Failed password for root from 10.0.0.9 port 22 ssh2"
            for minute in range(3)
            for second in range(3)
        ]
        + [
            'Mar  3 11:15:00 db-2 postgres[77]: ERROR:  relation "orders" does not exist',
            "Mar  3 11:15:01 db-2 postgres[77]: STATEMENT:  SELECT * FROM orders",
            "Mar  3 11:40:00 web-1 nginx[12]: worker process 42 exited on signal 11",
        ]
    )
    + "\n"
)


@pytest.fixture
def operations():
    department = make_department("Operations")
    return department, make_collection(owner=department)


def _log_lines(name: str) -> bytes:
    if not FAIL2BAN_LOGS.is_dir():
        pytest.fail("Debian's fail2ban is needed for real log samples: apt-get install fail2ban")
    lines = (FAIL2BAN_LOGS / name).read_text(errors="replace").splitlines()
    return ("\n".join(line for line in lines if not line.startswith("#")) + "\n").encode()


def test_a_real_sshd_log_becomes_windows_with_time_hosts_and_programs(operations):
    _, collection = operations
    document = ingested_document(collection=collection, name="auth.log", content=_log_lines("sshd"))

    assert document.current_version.status == DocumentVersion.Status.READY
    windows = list(Chunk.objects.filter(version=document.current_version))
    assert len(windows) > 5
    timed = [w for w in windows if w.time_start is not None]
    assert len(timed) >= len(windows) - 1
    assert all(w.time_start <= w.time_end for w in timed)
    assert any("sshd" in w.programs for w in windows)
    assert any(w.hosts for w in windows)
    assert windows[0].heading.startswith("auth")


def test_text_files_that_hold_a_log_are_detected_by_content_and_repeats_collapse(operations):
    _, collection = operations
    document = ingested_document(collection=collection, name="messages.txt", content=SYSLOG.encode())

    windows = list(Chunk.objects.filter(version=document.current_version).order_by("ordinal"))
    first = windows[0]
    assert first.hosts == ["web-1"] and first.programs == ["sshd"]
    assert "repeated" in first.text and first.text.count("Failed password") < 9
    assert first.time_start.month == 3 and first.time_start.day == 3
    assert any(w.severity_counts.get("error") for w in windows)


def test_non_utf8_logs_are_ingested_with_the_bad_bytes_replaced(operations):
    _, collection = operations
    content = SYSLOG.replace("Failed password for root", "Failed password for J\udcfcrgen").encode(
        "utf-8", errors="surrogateescape"
    )

    document = ingested_document(collection=collection, name="latin.log", content=content)

    assert document.current_version.status == DocumentVersion.Status.READY
    assert "J\ufffdrgen" in Chunk.objects.filter(version=document.current_version).first().text


def test_retrieval_filters_log_windows_by_host_time_and_severity_within_permissions(operations):
    department, collection = operations
    ingested_document(collection=collection, name="messages.log", content=SYSLOG.encode())
    member = make_user(department=department)
    outsider = make_user(department=make_department("Sales"))
    year = Chunk.objects.exclude(time_start=None).first().time_start.year

    def search(user, filters):
        return passages_search_for_user(
            user=user, query_text="database error relation does not exist", k=10, filters=filters, mode="dense"
        )

    db_hits = search(member, PassageFilters(host="db-2"))
    assert db_hits and all("db-2" in hit.heading for hit in db_hits)
    errors = search(member, PassageFilters(severities=("error",)))
    assert errors and all("ERROR" in hit.text for hit in errors)
    early = search(
        member,
        PassageFilters(
            time_from=datetime(year, 3, 3, 10, 0, tzinfo=UTC), time_to=datetime(year, 3, 3, 10, 5, tzinfo=UTC)
        ),
    )
    assert early and all("Failed password" in hit.text for hit in early)
    from_attacker = search(member, PassageFilters(peer="10.0.0.9"))
    assert from_attacker and all("Failed password" in hit.text for hit in from_attacker)
    assert search(member, PassageFilters(host="no-such-host")) == []
    assert search(outsider, PassageFilters(host="db-2")) == []
