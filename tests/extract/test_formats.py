"""The one table of file types against everything that asks about a type: upload, the upload form, search, import.

Each test looks at what a user meets (a refused upload, the form's label and file picker, the Search page's type menu,
the files `kb_import` takes from a folder), so a consumer that keeps a list of its own fails here once it drifts.
"""

import io
import re
import zipfile

import pytest
from bs4 import BeautifulSoup
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from extract.formats import ACCEPTED_EXTENSIONS, FORMATS, SEARCH_GROUPS, file_kind
from extract.types import DocumentRejected
from kb.documents.models import DocumentVersion
from kb.search.views import FILE_TYPES
from tests.factories import (
    collection_admin_logged_in,
    ingested_document,
)

pytestmark = pytest.mark.django_db

DOCUMENT_EXTENSIONS = {extension: f.kind for f in FORMATS if not f.archive for extension in f.extensions}
ARCHIVE_EXTENSIONS = {extension for f in FORMATS if f.archive for extension in f.extensions}
# Query values of the type filter that links and bookmarks already carry.
LINKED_FILE_TYPES = {"logs", "pdf", "office", "web", "mail"}


def _sample(extension: str, number: int) -> bytes:
    """What a file of that type may hold to be taken in: an archive holds one document; others differ by content
    (an identical upload is refused as unchanged)."""
    if extension in ARCHIVE_EXTENSIONS:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("inside.md", "# Inside\nA document inside an archive.")
        return buffer.getvalue()
    return f"Sample {number}, a {extension} file.\n".encode()


def _stored_names(names: list[str]) -> set[str]:
    """The documents that uploading files of these names makes: an archive becomes its member."""
    return {f"{name}/inside.md" if name.endswith(tuple(ARCHIVE_EXTENSIONS)) else name for name in names}


@pytest.fixture
def admin_client(client):
    _, collection, admin = collection_admin_logged_in(client, "Records")
    return client, admin, collection


def test_every_type_in_the_table_is_accepted_by_an_upload(admin_client):
    client, _, collection = admin_client
    names = [f"sample{extension}" for extension in ACCEPTED_EXTENSIONS]
    files = [SimpleUploadedFile(name, _sample(name[6:], number)) for number, name in enumerate(names)]

    response = client.post(
        reverse("documents:upload"), {"collection": collection.pk, "files": files}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert 'class="error rejected"' not in response.content.decode()
    stored = set(DocumentVersion.objects.values_list("document__original_name", flat=True))
    assert stored == _stored_names(names)
    assert ARCHIVE_EXTENSIONS and DOCUMENT_EXTENSIONS  # both sides of the table were exercised


def test_upload_validation_names_the_kind_in_any_case_and_lists_exactly_the_table_when_it_refuses():
    for extension, kind in DOCUMENT_EXTENSIONS.items():
        assert file_kind(f"Report{extension.upper()}") == kind

    with pytest.raises(DocumentRejected) as refused:
        file_kind("setup.exe")

    listed = re.search(r"\(supported: (.*)\)$", str(refused.value))[1].split(", ")
    assert sorted(listed) == sorted(DOCUMENT_EXTENSIONS)  # archives are expanded, so never a document themselves


def test_the_upload_form_lists_every_accepted_type_and_its_file_picker_offers_them(admin_client):
    client, _, _ = admin_client

    page = BeautifulSoup(client.get(reverse("documents:page")).content, "html.parser")

    picker = page.select_one("input[type=file][name=files]")
    label = " ".join(picker.find_parent("label").get_text(" ").split())
    assert all(f.label in label for f in FORMATS), label
    assert "ZIP" in label and "PDF" in label and "Word" in label
    assert picker["accept"].split(",") == list(ACCEPTED_EXTENSIONS)


def test_every_document_type_is_under_exactly_one_search_filter_and_archives_under_none():
    filters = {key: extensions for key, (_, extensions) in FILE_TYPES.items() if key}

    for extension in [*DOCUMENT_EXTENSIONS, *ARCHIVE_EXTENSIONS]:
        holding = [key for key, extensions in filters.items() if extension in extensions]
        # an archive's members are the documents (named "bundle.zip/a.md"); nothing is ever stored as a .zip
        assert len(holding) == (0 if extension in ARCHIVE_EXTENSIONS else 1), (extension, holding)
    assert LINKED_FILE_TYPES <= set(filters)
    assert all(extensions for extensions in filters.values())  # no filter that can only find nothing


def test_the_search_page_offers_each_type_filter_and_keeps_a_chosen_one(admin_client):
    client, _, _ = admin_client

    page = BeautifulSoup(client.post(reverse("search:page"), {"type": "mail"}).content, "html.parser")

    options = page.select("select[name=type] option")
    assert [option["value"] for option in options] == ["", *SEARCH_GROUPS]
    assert [option.get_text() for option in options[1:]] == list(SEARCH_GROUPS.values())
    assert page.select_one("select[name=type] option[selected]")["value"] == "mail"


def test_the_plain_text_filter_finds_text_files_and_the_web_filter_markdown(admin_client):
    client, admin, collection = admin_client
    ingested_document(
        collection=collection, name="oncall-notes.txt", content=b"The on-call rota changes every Monday at nine."
    )
    ingested_document(
        collection=collection, name="policy.md", content=b"# Rota policy\nThe on-call rota is published a month ahead."
    )

    def found(file_type: str) -> str:
        return client.post(reverse("search:page"), {"q": "on-call rota", "type": file_type}).content.decode()

    assert "oncall-notes" in found("text") and "Rota policy" not in found("text")
    assert "Rota policy" in found("web") and "oncall-notes" not in found("web")


def test_kb_import_picks_up_a_file_of_every_accepted_type_and_nothing_else(admin_client, tmp_path, capsys):
    _, admin, collection = admin_client
    names = []
    for number, extension in enumerate(ACCEPTED_EXTENSIONS):
        name = f"sample{extension}"
        folder = tmp_path / ("nested" if number % 2 else "")  # found in subfolders too
        folder.mkdir(exist_ok=True)
        (folder / name).write_bytes(_sample(extension, number))
        names.append(name)
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "README").write_bytes(b"no extension")

    call_command("kb_import", str(tmp_path), collection=collection.name, user=admin.username, no_wait=True)

    stored = set(DocumentVersion.objects.values_list("document__original_name", flat=True))
    assert stored == _stored_names(names)
    assert f"queued {len(names)} file(s), skipped 0" in capsys.readouterr().out
