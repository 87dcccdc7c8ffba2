"""The Uploads page: every past upload batch of the collections an admin manages, and what happened to each file."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kb.accounts.services import user_create
from kb.documents.models import DocumentVersion
from kb.documents.services import document_version_ingest, upload_batch
from kb.platform.actors import system_actor
from tests.factories import PASSWORD, collection_admin_logged_in, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def legal(client):
    department, collection, admin = collection_admin_logged_in(client, "Legal")
    return {"department": department, "collection": collection, "admin": admin}


def _batch(legal, *files):
    return upload_batch(acting_user=legal["admin"], collection=legal["collection"], files=list(files)).batch


def _ingest(batch):
    for version in DocumentVersion.objects.filter(batch=batch):
        document_version_ingest(version_id=version.pk)


def _figures(batch):
    return (batch.pk, batch.files, batch.ready, batch.failed, batch.in_progress, batch.rejected_count, batch.state)


def test_uploads_page_lists_batches_newest_first_with_what_happened_to_their_files(client, legal):
    older = _batch(
        legal,
        SimpleUploadedFile("policy.md", b"# Policy\nLaptops are locked when unattended."),
        SimpleUploadedFile("blob.txt", b"\x00\x01binary"),
        SimpleUploadedFile("setup.exe", b"MZ\x90\x00"),
    )
    _ingest(older)
    newer = _batch(legal, SimpleUploadedFile("a.txt", b"Alpha."), SimpleUploadedFile("b.txt", b"Beta."))
    clean = _batch(legal, SimpleUploadedFile("c.txt", b"Gamma."))
    _ingest(clean)

    response = client.get(reverse("documents:batches"))

    assert response.status_code == 200
    rows = [_figures(batch) for batch in response.context["page"]]
    assert rows == [
        (clean.pk, 1, 1, 0, 0, 0, "finished"),
        (newer.pk, 2, 0, 0, 2, 0, "in_progress"),
        (older.pk, 2, 1, 1, 0, 1, "finished_with_failures"),
    ]
    page = response.content.decode()
    assert (
        page.index(f'id="batch-row-{clean.pk}"')
        < page.index(f'id="batch-row-{newer.pk}"')
        < page.index(f'id="batch-row-{older.pk}"')
    )
    assert "Finished with failures" in page and "In progress" in page
    assert legal["admin"].username in page and legal["collection"].name in page
    assert f'href="{reverse("documents:batch-detail", args=[older.pk])}"' in page


def test_uploads_page_counts_in_one_query_whatever_the_number_of_batches(client, legal):
    _batch(legal, SimpleUploadedFile("one.txt", b"One."))
    with CaptureQueriesContext(connection) as one_batch:
        client.get(reverse("documents:batches"))
    for n in range(4):
        _batch(legal, SimpleUploadedFile(f"more{n}.txt", f"More {n}.".encode()), SimpleUploadedFile("x.exe", b"MZ"))
    with CaptureQueriesContext(connection) as five_batches:
        response = client.get(reverse("documents:batches"))

    assert len(response.context["page"].object_list) == 5
    assert len(five_batches) == len(one_batch)


def test_uploads_page_shows_25_batches_a_page(client, legal):
    batches = [_batch(legal) for _ in range(26)]

    first = client.get(reverse("documents:batches"))
    second = client.get(reverse("documents:batches"), {"page": 2})

    assert [b.pk for b in first.context["page"]] == [b.pk for b in reversed(batches[1:])]
    assert [b.pk for b in second.context["page"]] == [batches[0].pk]
    assert "Page 1 of 2" in first.content.decode() and "?page=2" in first.content.decode()


def test_another_departments_admin_neither_sees_nor_opens_the_batch(client, legal):
    batch = _batch(legal, SimpleUploadedFile("contract.md", b"# Contract\nThree months notice."))
    sales = make_department("Sales")
    make_collection(owner=sales)
    sales_admin = make_user(department=sales, admin=True)
    _batch(
        {"admin": sales_admin, "collection": make_collection(owner=sales)}, SimpleUploadedFile("pitch.md", b"# Pitch")
    )
    client.login(username=sales_admin.username, password=PASSWORD)

    listing = client.get(reverse("documents:batches"))

    assert batch.pk not in [b.pk for b in listing.context["page"]]
    assert len(listing.context["page"].object_list) == 1
    assert client.get(reverse("documents:batch-detail", args=[batch.pk])).status_code == 404
    assert client.get(reverse("documents:batch-detail", args=[batch.pk]), headers=HTMX).status_code == 404
    assert client.get(reverse("documents:batch", args=[batch.pk]), headers=HTMX).status_code == 404


def test_employees_see_no_uploads_and_cannot_open_one(client, legal):
    batch = _batch(legal, SimpleUploadedFile("contract.md", b"# Contract"))
    employee = make_user(department=legal["department"])
    client.login(username=employee.username, password=PASSWORD)

    listing = client.get(reverse("documents:batches"))

    assert listing.status_code == 200 and not listing.context["page"].object_list
    assert "No uploads yet." in listing.content.decode()
    assert client.get(reverse("documents:batch-detail", args=[batch.pk])).status_code == 404


def test_superusers_see_every_departments_uploads(client, legal):
    batch = _batch(legal, SimpleUploadedFile("contract.md", b"# Contract"))
    root = user_create(acting_user=system_actor(), username="root", password=PASSWORD, is_superuser=True)
    client.login(username=root.username, password=PASSWORD)

    assert [b.pk for b in client.get(reverse("documents:batches")).context["page"]] == [batch.pk]
    assert client.get(reverse("documents:batch-detail", args=[batch.pk])).status_code == 200


def test_batch_page_lists_each_file_and_each_refused_file_with_its_reason(client, legal):
    batch = _batch(
        legal,
        SimpleUploadedFile("blob.txt", b"\x00\x01binary"),
        SimpleUploadedFile("notes.md", b"# Notes\nQueued only."),
        SimpleUploadedFile("setup.exe", b"MZ\x90\x00"),
        SimpleUploadedFile("empty.txt", b""),
    )
    document_version_ingest(version_id=DocumentVersion.objects.get(document__original_name="blob.txt").pk)

    page = client.get(reverse("documents:batch-detail", args=[batch.pk])).content.decode()

    assert "<html" in page
    assert "blob.txt" in page and "notes.md" in page and "v1" in page
    assert "looks binary" in page  # the failure reason, as the parser put it
    assert "Queued, waiting for a worker" in page
    assert "Refused at upload" in page
    assert "setup.exe</td>" in page and "&#x27;.exe&#x27; files are not supported" in page
    assert "empty.txt</td>" in page and "the file is empty" in page


def test_a_failed_file_shows_a_retry_button_that_queues_it_again(client, legal):
    batch = _batch(legal, SimpleUploadedFile("junk.txt", b"\x00\x01\x02junk"))
    version = DocumentVersion.objects.get()
    document_version_ingest(version_id=version.pk)
    retry_url = reverse("documents:version-retry", args=[version.pk])

    partial = client.get(reverse("documents:batch-detail", args=[batch.pk]), headers=HTMX).content.decode()
    assert "looks binary" in partial and f'hx-post="{retry_url}"' in partial

    retried = client.post(retry_url, headers=HTMX)

    assert retried.status_code == 200 and retried["HX-Trigger"] == "version-retried"
    version.refresh_from_db()
    assert version.status == DocumentVersion.Status.QUEUED and not version.failure_reason
    partial = client.get(reverse("documents:batch-detail", args=[batch.pk]), headers=HTMX).content.decode()
    assert f'hx-post="{retry_url}"' not in partial and 'hx-trigger="every 2s' in partial


def test_htmx_asks_for_the_file_list_alone(client, legal):
    batch = _batch(legal, SimpleUploadedFile("a.txt", b"Alpha."), SimpleUploadedFile("x.exe", b"MZ"))

    partial = client.get(reverse("documents:batch-detail", args=[batch.pk]), headers=HTMX).content.decode()

    assert partial.lstrip().startswith(f'<div class="card batch-detail" id="batch-files-{batch.pk}"')
    assert "<html" not in partial and "<h1>" not in partial and "Refused at upload" not in partial
    assert "a.txt" in partial
    listing = client.get(reverse("documents:batches"), headers=HTMX).content.decode()
    assert listing.lstrip().startswith('<div id="batches">') and "<html" not in listing


def test_the_file_list_polls_until_the_batch_is_finished(client, legal):
    batch = _batch(legal, SimpleUploadedFile("a.txt", b"\x00binary"), SimpleUploadedFile("b.txt", b"\x00more"))
    url = reverse("documents:batch-detail", args=[batch.pk])

    unfinished = client.get(url, headers=HTMX).content.decode()
    assert f'hx-get="{url}"' in unfinished and 'hx-trigger="every 2s, version-retried"' in unfinished
    assert 'hx-trigger="every 2s' in client.get(url).content.decode()  # the full page starts polling too

    _ingest(batch)
    finished = client.get(url, headers=HTMX).content.decode()

    assert "every 2s" not in finished and "Finished with failures" in finished
    assert 'hx-trigger="version-retried"' in finished  # only a retry wakes it up again


def test_the_documents_page_batch_card_links_to_the_batch_page(client, legal):
    response = client.post(
        reverse("documents:upload"),
        {"collection": legal["collection"].pk, "files": [SimpleUploadedFile("a.md", b"# A")]},
        headers=HTMX,
    )
    batch_id = DocumentVersion.objects.get().batch_id

    assert f'href="{reverse("documents:batch-detail", args=[batch_id])}"' in response.content.decode()
