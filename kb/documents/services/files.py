"""Uploaded files in storage, removed with the rows that name them."""

from pathlib import Path

from django.core.files.storage import FileSystemStorage, default_storage
from django.db import transaction


def stored_files_delete_on_commit(names: list[str]) -> None:
    """Uploaded files go once the rows that name them are gone for good: a rolled-back delete keeps them."""

    def delete() -> None:
        for name in names:
            stored_file_delete(name)

    transaction.on_commit(delete)


def stored_file_delete(name: str) -> None:
    default_storage.delete(name)
    if isinstance(default_storage, FileSystemStorage):  # object stores have no folders to leave behind
        _remove_empty_folders(Path(default_storage.path(name)).parent, root=Path(default_storage.location))


def _remove_empty_folders(folder: Path, *, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty: another version or document still lives there
            return
        folder = folder.parent
