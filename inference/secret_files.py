"""Secrets kept in files of their own: the serving process's API key, Django's secret key, the audit chain's key.

Django-free, so that the serving process and settings read them alike. A file is made whole, owner-only, under a name
nobody else has, then linked into place: a process that reads it sees a whole secret or no file, and of processes
making it at once the first one's secret is everybody's. A file other users may read is refused, not used.
"""

import os
import secrets
import stat
from pathlib import Path


def secret_file_read(path: Path) -> str | None:
    """The secret in `path`, or None where there is no such file; refused where others may read it, or it is empty."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise PermissionError(f"{path} is readable by other users; make it the owner's only (chmod 600 {path})")
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty; remove it to have a new secret made, or set its variable instead")
    return secret


def secret_file_ensure(path: Path) -> str:
    """The secret in `path`, made there first (random, 64 URL-safe characters) if there is none."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.parent / f".{path.name}.{secrets.token_hex(8)}"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(48) + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.link(partial, path)  # fails if another process made it first: then its secret is the secret
        except FileExistsError:
            pass
        finally:
            partial.unlink(missing_ok=True)
    secret = secret_file_read(path)
    assert secret is not None  # made above, and never removed by us
    return secret
