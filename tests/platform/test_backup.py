"""`manage.py kb_backup` and `kb_restore`: a deployment backed up and restored into a fresh one is the same.

The fresh deployment is a new var folder: its own embedded PostgreSQL (an empty server, as on a new machine) and
uploads folder, reached by the app's own commands in processes of their own.
"""

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.core.management.color import no_style
from django.db import connection

from kb.audit.ledger import ledger_head
from kb.audit.services import query_record_create
from kb.documents.models import DocumentVersion
from kb.platform.backup import DATABASE_DUMP, MANIFEST
from kb.search.selectors import passages_search_for_user
from tests.conftest import PROJECT_ROOT
from tests.factories import (
    PARKING_NOTE,
    department_names_of,
    ingested_document,
    make_collection,
    make_department,
    make_user,
)

# The module's rows are made and flushed by its fixture; the mark makes pytest-django set up the test database.
pytestmark = pytest.mark.django_db

QUESTION = "Where do visitors park?"
CANTEEN_NOTE = b"""# The canteen

Lunch is served from 12:00 to 14:00 on the ground floor. Vegetarian dishes are marked green.
"""
# What the restored deployment answers, printed as JSON by a process of its own.
SEARCH_SCRIPT = f"""
import json
from kb.accounts.models import User
from kb.search.selectors import keyword_connections_close, passages_search_for_user
hits = passages_search_for_user(user=User.objects.get(username="backup-reader"), query_text={QUESTION!r}, k=5)
print(json.dumps([[hit.chunk_id, hit.heading, hit.text] for hit in hits]))
keyword_connections_close()
"""


@dataclass(frozen=True)
class Restored:
    archive: Path
    var_dir: Path
    environment: dict[str, str]
    restore: subprocess.CompletedProcess
    head: str  # the audit chain's head as `audit_verify` prints it, "SEQUENCE:HASH"
    hits: list[list]
    files: dict[str, bytes]  # uploads by storage name


def manage(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _database_as_migrated(migrated_rows: str) -> None:
    """Empty the test database of this module's rows and put back those the migrations made (the active embedding
    model among them), with each table's sequence after them: the modules that run next find it as migrated."""
    call_command("flush", interactive=False, verbosity=0, inhibit_post_migrate=True)
    connection.creation.deserialize_db_from_string(migrated_rows)
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), apps.get_models()):
            cursor.execute(statement)


@pytest.fixture(scope="module")
def restored(django_db_setup, django_db_blocker, tmp_path_factory):
    """A deployment with documents, passages and audit records, backed up, then restored into a fresh var folder."""
    with django_db_blocker.unblock():
        migrated_rows = connection.creation.serialize_db_to_string()
        department = make_department("Facilities")
        collection = make_collection(owner=department, name="Office notes")
        ingested_document(collection=collection, name="parking.md", content=PARKING_NOTE)
        ingested_document(collection=collection, name="canteen.md", content=CANTEEN_NOTE)
        reader = make_user(department=department, username="backup-reader")
        hits = passages_search_for_user(user=reader, query_text=QUESTION, k=5)
        query_record_create(
            user=reader,
            department_names=department_names_of(reader),
            question=QUESTION,
            answer="In the basement garage on level -2 [1].",
            passages=[hit.recorded(sent_to_model=True) for hit in hits],
            model="stored-for-the-test",
            backend="none",
            generation_params={},
            prompt_tokens=0,
            completion_tokens=0,
            retrieval_ms=0,
            first_token_ms=None,
            total_ms=0,
        )
        head = ledger_head()
        files = {
            version.file.name: Path(settings.MEDIA_ROOT, version.file.name).read_bytes()
            for version in DocumentVersion.objects.all()
        }
        archive = tmp_path_factory.mktemp("backup") / "kb.tar"
        call_command("kb_backup", str(archive), verbosity=0)
        _database_as_migrated(migrated_rows)

    # Not under pytest's tmp_path: as root the server runs as another user, who cannot enter /tmp/pytest-of-root.
    var_dir = Path(tempfile.mkdtemp(prefix="restored-", dir=settings.VAR_DIR))
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "CELERY_BROKER_URL", "KB_MEDIA_ROOT"}
    }
    environment.update({"DJANGO_SETTINGS_MODULE": "tests.settings", "KB_VAR_DIR": str(var_dir)})
    try:
        yield Restored(
            archive=archive,
            var_dir=var_dir,
            environment=environment,
            restore=manage(environment, "kb_restore", str(archive)),
            head=f"{head.sequence}:{head.entry_hash}",
            hits=[[hit.chunk_id, hit.heading, hit.text] for hit in hits],
            files=files,
        )
    finally:
        manage(environment, "kb_database_stop")
        shutil.rmtree(var_dir)


def test_restore_into_a_fresh_deployment_shows_its_progress(restored):
    assert restored.restore.returncode == 0, restored.restore.stderr
    assert "restored" in restored.restore.stdout
    progress = restored.restore.stderr.replace("\r", "\n")
    for stage in ("checking the archive", "restoring the database", "restoring files"):
        assert f"{stage}: 100%" in progress, stage


def test_restored_audit_chain_verifies_up_to_the_same_head(restored):
    verified = manage(restored.environment, "audit_verify", f"--expect-head={restored.head}")

    assert verified.returncode == 0, verified.stderr
    assert f"head {restored.head}" in verified.stdout


def test_restored_search_returns_the_same_passages(restored):
    assert any("basement garage" in text for _, _, text in restored.hits)

    searched = manage(restored.environment, "shell", "-c", SEARCH_SCRIPT)

    assert searched.returncode == 0, searched.stderr
    assert json.loads(searched.stdout.strip().splitlines()[-1]) == restored.hits


def test_restored_uploads_are_the_same_files(restored):
    assert len(restored.files) == 2
    for name, content in restored.files.items():
        assert (restored.var_dir / "media" / name).read_bytes() == content


def test_restore_refuses_a_database_with_tables_unless_told_to_replace_them(restored):
    refused = manage(restored.environment, "kb_restore", str(restored.archive), "--verbosity=0")
    assert refused.returncode != 0
    assert "already holds" in refused.stderr and "--replace" in refused.stderr

    replaced = manage(restored.environment, "kb_restore", str(restored.archive), "--replace", "--verbosity=0")
    assert replaced.returncode == 0, replaced.stderr
    verified = manage(restored.environment, "audit_verify", f"--expect-head={restored.head}")
    assert verified.returncode == 0, verified.stderr


def _rewritten(archive: Path, target: Path, *, change: dict[str, bytes]) -> Path:
    """A copy of `archive` with some members' content changed (the manifest too, if given)."""
    with tarfile.open(archive) as source, tarfile.open(target, "w") as copy:
        for member in source.getmembers():
            data = change.get(member.name, source.extractfile(member).read())
            member.size = len(data)
            copy.addfile(member, io.BytesIO(data))
    return target


def test_a_damaged_archive_is_refused_before_anything_is_restored(restored, tmp_path):
    with tarfile.open(restored.archive) as archive:
        dump = bytearray(archive.extractfile(DATABASE_DUMP).read())
    dump[len(dump) // 2] ^= 0xFF
    damaged = _rewritten(restored.archive, tmp_path / "damaged.tar", change={DATABASE_DUMP: bytes(dump)})

    with pytest.raises(CommandError, match="database.dump' in the archive is damaged"):
        call_command("kb_restore", str(damaged), verbosity=0)


def test_an_archive_from_newer_code_is_refused(restored, tmp_path):
    with tarfile.open(restored.archive) as archive:
        manifest = json.load(archive.extractfile(MANIFEST))
    manifest["migrations"]["documents"].append("9999_from_the_future")
    newer = _rewritten(restored.archive, tmp_path / "newer.tar", change={MANIFEST: json.dumps(manifest).encode()})

    with pytest.raises(CommandError, match=r"migrations this code does not know \(documents.9999_from_the_future"):
        call_command("kb_restore", str(newer), verbosity=0)


def test_backup_never_overwrites_a_file(tmp_path):
    existing = tmp_path / "kb.tar"
    existing.write_bytes(b"an earlier backup")

    with pytest.raises(CommandError, match="exists; name a new file"):
        call_command("kb_backup", str(existing), verbosity=0)
    assert existing.read_bytes() == b"an earlier backup"


def test_what_is_not_a_backup_archive_is_refused_with_the_reason(tmp_path):
    not_a_tar = tmp_path / "notes.tar"
    not_a_tar.write_text("a plain text file")

    with pytest.raises(CommandError, match="is not a tar archive"):
        call_command("kb_restore", str(not_a_tar), verbosity=0)
    with pytest.raises(CommandError, match="is not a folder; make it first"):
        call_command("kb_backup", str(tmp_path / "missing" / "kb.tar"), verbosity=0)


def test_the_archive_is_readable_by_its_owner_only_whatever_the_umask(tmp_path):
    """It holds every document, the password hashes and the audit trail: a shell's usual umask 022 would let every
    user of the host read it."""
    archive = tmp_path / "kb.tar"
    previous = os.umask(0o022)
    try:
        call_command("kb_backup", str(archive), verbosity=0)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert DATABASE_DUMP in tar.getnames() and MANIFEST in tar.getnames()


ODD_MANIFEST = {"format": "kb-backup", "version": 1, "files": [], "migrations": {}, "audit_chain_key": ""}


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ([], "not a knowledge-base backup"),
        ({**ODD_MANIFEST, "files": "database.dump"}, "not shaped as kb_backup writes it"),
        ({**ODD_MANIFEST, "files": [{"bytes": 1}]}, "not shaped as kb_backup writes it"),
        ({**ODD_MANIFEST, "files": [{"name": DATABASE_DUMP}]}, "not shaped as kb_backup writes it"),
        ({**ODD_MANIFEST, "migrations": ["documents"]}, "not shaped as kb_backup writes it"),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_refused_with_the_reason(tmp_path, manifest, reason):
    """Read before anything is restored: a hand-edited or foreign manifest is a reason, not a traceback."""
    archive = tmp_path / "odd.tar"
    content = json.dumps(manifest).encode()
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))

    with pytest.raises(CommandError, match=reason):
        call_command("kb_restore", str(archive), verbosity=0)
