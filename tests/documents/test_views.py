import io
import re
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kb.documents.models import Document, DocumentVersion
from kb.documents.services import document_version_ingest
from kb.search.selectors import passages_search_for_user
from tests.factories import (
    PASSWORD,
    collection_admin_logged_in,
    ingested_document,
    make_collection,
    make_department,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(client):
    return collection_admin_logged_in(client, "Legal")[1]


def _upload(client, collection, *files, htmx=True):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(
        reverse("documents:upload"), {"collection": collection.pk, "files": list(files)}, headers=headers
    )


def test_a_batch_with_bad_files_queues_the_good_ones_and_lists_each_reason(client, setup):
    response = _upload(
        client,
        setup,
        SimpleUploadedFile("contract.md", b"# Contract\nNotice period is three months."),
        SimpleUploadedFile("empty.txt", b""),
        SimpleUploadedFile("setup.exe", b"MZ\x90\x00"),
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Queued 1 file for ingestion." in page
    assert "empty.txt: the file is empty" in page
    assert "setup.exe: &#x27;.exe&#x27; files are not supported" in page
    assert list(DocumentVersion.objects.values_list("document__original_name", flat=True)) == ["contract.md"]
    assert 'hx-trigger="every 1s"' in page  # the queued row polls for progress


def test_failed_versions_show_their_reason_and_can_be_retried_from_the_page(client, setup):
    _upload(client, setup, SimpleUploadedFile("junk.txt", b"\x00\x01\x02junk"))
    version = DocumentVersion.objects.get()
    document_version_ingest(version_id=version.pk)

    row = client.get(reverse("documents:version-row", args=[version.pk]), headers={"HX-Request": "true"})
    assert "looks binary" in row.content.decode() and 'hx-trigger="every 1s"' not in row.content.decode()

    retried = client.post(reverse("documents:version-retry", args=[version.pk]), headers={"HX-Request": "true"})
    assert retried.status_code == 200 and "Queued" in retried.content.decode()
    version.refresh_from_db()
    assert version.status == DocumentVersion.Status.QUEUED


def test_delete_from_the_page_removes_the_document(client, setup):
    _upload(client, setup, SimpleUploadedFile("memo.txt", b"Office closes at 6."))
    document = Document.objects.get()

    response = client.post(reverse("documents:delete", args=[document.pk]), headers={"HX-Request": "true"})

    assert "Deleted memo.txt" in response.content.decode()
    assert not Document.objects.exists()


def test_employees_cannot_reach_the_documents_workspace(client):
    department = make_department()
    employee = make_user(department=department)
    make_collection(owner=department)
    client.login(username=employee.username, password=PASSWORD)

    assert client.get(reverse("documents:page")).status_code == 403
    assert client.post(reverse("documents:upload"), {}).status_code == 403


def test_an_upload_is_followed_as_a_batch_until_every_file_is_done(client, setup):
    response = _upload(
        client,
        setup,
        SimpleUploadedFile("a.md", b"# A\nAlpha."),
        SimpleUploadedFile("b.txt", b"\x00binary"),
        SimpleUploadedFile("c.exe", b"MZ"),
    )
    page = response.content.decode()
    assert "This upload:</strong> 2 files" in page and "1 refused" in page
    batch_id = DocumentVersion.objects.first().batch_id
    assert f'hx-get="{reverse("documents:batch", args=[batch_id])}"' in page

    for version in DocumentVersion.objects.all():
        document_version_ingest(version_id=version.pk)
    card = client.get(reverse("documents:batch", args=[batch_id]), headers={"HX-Request": "true"}).content.decode()

    assert "1 ready" in card and "1 failed" in card and "0 in progress" in card and "done" in card
    assert "every 1s" not in card


def test_department_admins_grant_and_revoke_read_access_on_the_access_page(client, setup):
    sales = make_department("Sales")
    from kb.documents.models import CollectionGrant

    page = client.post(
        reverse("documents:grant-create", args=[setup.pk]), {"department": sales.pk}, headers={"HX-Request": "true"}
    ).content.decode()
    grant = CollectionGrant.objects.get()
    assert "Department Sales" in page and grant.department == sales

    refused = client.post(reverse("documents:grant-create", args=[setup.pk]), {"department": sales.pk})
    assert refused.status_code == 400

    client.post(reverse("documents:grant-revoke", args=[grant.pk]), headers={"HX-Request": "true"})
    assert not CollectionGrant.objects.exists()


def test_a_name_longer_in_bytes_than_a_file_name_may_be_loses_nothing_around_it(client, setup):
    long_name = "年度報告書" * 18 + ".md"  # 90 CJK characters: 273 bytes in UTF-8, under the 255-character cap
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as members:
        members.writestr(f"reports/{'議事録' * 30}.md", "# Minutes\n\nThe board met.")

    response = _upload(
        client,
        setup,
        SimpleUploadedFile("before.md", b"# Before\n\nFirst file."),
        SimpleUploadedFile(long_name, b"# Annual report\n\nRevenue grew."),
        SimpleUploadedFile("after.md", b"# After\n\nLast file."),
        SimpleUploadedFile("minutes.zip", archive.getvalue()),
    )

    assert response.status_code == 200 and "Queued 4 files for ingestion." in response.content.decode()
    names = set(DocumentVersion.objects.values_list("document__original_name", flat=True))
    assert names == {"before.md", long_name, "after.md", f"minutes.zip/reports/{'議事録' * 30}.md"}
    assert all(len(Path(version.file.name).name.encode()) <= 16 for version in DocumentVersion.objects.all())


def test_deleting_a_document_leaves_no_empty_folder_behind(client, setup, django_capture_on_commit_callbacks):
    _upload(client, setup, SimpleUploadedFile("memo.txt", b"Office closes at 6."))
    stored = Path(DocumentVersion.objects.get().file.path)
    assert stored.is_file()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("documents:delete", args=[Document.objects.get().pk]), headers={"HX-Request": "true"})

    assert not stored.parent.exists()
    assert not stored.parent.parent.exists()  # the collection's folder held only this document


@pytest.fixture
def two_departments(client):
    """An admin of a firm manages the collections of both its departments; each department has a plain member."""
    firm = make_department("Firm")
    legal, sales = make_department("Legal", parent=firm), make_department("Sales", parent=firm)
    admin = make_user(department=firm, admin=True)
    client.login(username=admin.username, password=PASSWORD)
    contracts, leads = make_collection(owner=legal), make_collection(owner=sales)
    memo = ingested_document(
        collection=contracts, name="memo.txt", content=b"The office closes at six on Fridays during the summer."
    )
    return {
        "contracts": contracts,
        "leads": leads,
        "memo": memo,
        "legal_member": make_user(department=legal),
        "sales_member": make_user(department=sales),
    }


def _move(client, document, collection_id):
    return client.post(
        reverse("documents:move", args=[document.pk]), {"collection": collection_id}, headers={"HX-Request": "true"}
    )


def _finds(user, document) -> bool:
    hits = passages_search_for_user(user=user, query_text="office closes Fridays", k=5, mode="keyword")
    return document.pk in {hit.document_id for hit in hits}


def test_a_manager_of_both_collections_moves_a_document_and_its_readers_change_with_it(client, two_departments):
    memo, leads = two_departments["memo"], two_departments["leads"]
    legal_member, sales_member = two_departments["legal_member"], two_departments["sales_member"]
    assert _finds(legal_member, memo)
    assert not _finds(sales_member, memo)

    response = _move(client, memo, leads.pk)

    assert response.status_code == 200
    page = response.content.decode()
    assert f"Moved memo.txt to {leads.name}." in page
    assert Document.objects.get(pk=memo.pk).collection == leads
    assert f"<td>{leads.name}</td>" in page  # the row now shows its new collection
    assert _finds(sales_member, memo)
    assert not _finds(legal_member, memo)


def test_moving_is_a_post(client, two_departments):
    assert client.get(reverse("documents:move", args=[two_departments["memo"].pk])).status_code == 405


@pytest.mark.parametrize("target", ["unmanaged", "abc", "own"])
def test_a_collection_the_user_may_not_move_to_is_refused_and_nothing_moves(client, two_departments, target):
    memo, contracts = two_departments["memo"], two_departments["contracts"]
    collection_id = {
        "unmanaged": lambda: make_collection(owner=make_department("Finance")).pk,
        "abc": lambda: "abc",
        "own": lambda: contracts.pk,
    }[target]()

    response = _move(client, memo, collection_id)

    assert response.status_code == 400
    assert "Choose a collection you manage." in response.content.decode()
    assert Document.objects.get(pk=memo.pk).collection == contracts


def test_a_name_clash_in_the_target_collection_is_refused_with_its_reason(client, two_departments):
    memo, contracts, leads = two_departments["memo"], two_departments["contracts"], two_departments["leads"]
    ingested_document(collection=leads, name="memo.txt", content=b"Another memo.")

    response = _move(client, memo, leads.pk)

    assert response.status_code == 400
    assert f"{leads.name} already has a document named memo.txt" in response.content.decode()
    assert Document.objects.get(pk=memo.pk).collection == contracts


def _move_options(html: str) -> set[int]:
    form = html.split('name="collection" aria-label="Move', 1)[1].split("</select>", 1)[0]
    return {int(value) for value in re.findall(r'<option value="(\d+)"', form)}


def test_the_move_form_offers_only_the_other_collections_the_user_manages(client, two_departments):
    memo, contracts, leads = two_departments["memo"], two_departments["contracts"], two_departments["leads"]
    archive = make_collection(owner=contracts.owner)
    make_collection(owner=make_department("Finance"))  # not theirs: never offered

    page = client.get(reverse("documents:page")).content.decode()
    row = client.get(
        reverse("documents:version-row", args=[memo.current_version_id]), headers={"HX-Request": "true"}
    ).content.decode()

    for html in (page, row):
        assert reverse("documents:move", args=[memo.pk]) in html
        assert _move_options(html) == {leads.pk, archive.pk}


def test_a_manager_of_a_single_collection_sees_no_move_form(client, setup):
    _upload(client, setup, SimpleUploadedFile("memo.txt", b"Office closes at 6."))
    document = Document.objects.get()

    page = client.get(reverse("documents:page")).content.decode()

    assert "Delete memo.txt" in page
    assert reverse("documents:move", args=[document.pk]) not in page


def test_the_upload_form_states_the_request_limit_and_carries_it_for_the_browser_s_check(client, setup, settings):
    settings.KB_REQUEST_MAX_BYTES = 3 * 1024 * 1024

    page = " ".join(client.get(reverse("documents:page")).content.decode().split())

    assert 'data-max-bytes="3145728"' in page  # kb.js checks the chosen files against it (tests/e2e/test_upload_limit)
    assert "at most 3.0 MB together" in page
    assert '<p id="upload-problem" class="error" role="alert" data-upload-problem hidden></p>' in page


def _upload_select(page: str) -> str:
    return re.search(r'<select name="collection" id="upload-collection".*?</select>', page, re.DOTALL).group(0)


def test_the_upload_form_keeps_the_collection_last_uploaded_to(client, two_departments):
    offered = re.findall(
        r'<option value="(\d+)"', _upload_select(client.get(reverse("documents:page")).content.decode())
    )
    not_first = next(c for c in (two_departments["contracts"], two_departments["leads"]) if str(c.pk) != offered[0])

    page = _upload(client, not_first, SimpleUploadedFile("notes.md", b"# Notes\nKept where they were sent.")).content
    refused = _upload(client, not_first).content  # no file: refused, and still the same collection

    for drawn in (page, refused):
        assert re.search(rf'<option value="{not_first.pk}" selected>', _upload_select(drawn.decode()))
