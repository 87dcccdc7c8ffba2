"""Folders of the app's data (var/, uploads) that only the user running it may enter."""

from pathlib import Path


def owner_only_folders_ensure(*folders: Path) -> None:
    """Make each folder (and missing parents) owner-only, tightening one an earlier version left open to others.

    Running as root, the embedded PostgreSQL opens its data folder's parents again for its own system user to pass
    through; what lies in them is owner-only all the same (umask 077, FILE_UPLOAD_PERMISSIONS)."""
    for folder in folders:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
