"""Uploaded originals are their owner's only: no other local user reads them."""

import stat
from pathlib import Path

import pytest
from django.conf import settings

from kb.documents.services import document_upload
from kb.platform.actors import system_actor
from tests.factories import make_collection, make_department

pytestmark = pytest.mark.django_db


def test_an_uploaded_file_and_its_folders_are_readable_by_the_owner_only():
    collection = make_collection(owner=make_department("Legal"))
    version = document_upload(
        acting_user=system_actor(), collection=collection, name="notes.md", data=b"# Notes\nThree months.\n"
    )

    stored = Path(version.file.path)
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    folders = [folder for folder in stored.parents if folder.is_relative_to(settings.MEDIA_ROOT)]
    assert len(folders) >= 3 and {stat.S_IMODE(folder.stat().st_mode) for folder in folders} == {0o700}
