"""Folders and files of the app's data (var/, uploads, backups) that only the user running it may open."""

import os
from pathlib import Path
from typing import IO


def owner_only_folders_ensure(*folders: Path) -> None:
    """Make each folder (and missing parents) owner-only, tightening one an earlier version left open to others.

    Running as root, the embedded PostgreSQL opens its data folder's parents again for its own system user to pass
    through; what lies in them is owner-only all the same (umask 077, FILE_UPLOAD_PERMISSIONS)."""
    for folder in folders:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)


def owner_only_file_create(path: Path) -> IO[bytes]:
    """A new file at `path`, open for writing, that only its owner may read whatever the umask of whoever runs the
    command; one already there (left by an earlier run) is replaced, never reopened with the mode it had."""
    path.unlink(missing_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
