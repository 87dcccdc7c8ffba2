"""PDF passages know the pages they lie on, and their readers can open the original PDF; nobody else can."""

import pypdfium2
import pytest
from django.urls import reverse

from kb.documents.models import Chunk
from tests.factories import PASSWORD, ingested_document, make_collection, make_department, make_user
from tests.pdfs import faq_handbook_pdf

pytestmark = pytest.mark.django_db


@pytest.fixture
def handbook(python_docs):
    department = make_department("Engineering")
    collection = make_collection(owner=department)
    data, _ = faq_handbook_pdf(python_docs)
    document = ingested_document(collection=collection, name="python-faq.pdf", content=data)
    return department, document, data


def _letters(text: str) -> str:
    return "".join(character for character in text if character.isalnum())


def _page_letters(data: bytes) -> list[str]:
    """Each page's text as pdfium reads it, letters and digits only: an oracle independent of pdfminer."""
    pdf = pypdfium2.PdfDocument(data)
    try:
        return [_letters(pdf[index].get_textpage().get_text_range()) for index in range(len(pdf))]
    finally:
        pdf.close()


def test_every_pdf_passage_begins_on_its_first_page_and_ends_on_its_last(handbook):
    _, document, data = handbook
    pages = _page_letters(data)
    assert len(pages) == 3
    chunks = list(Chunk.objects.filter(version=document.current_version))

    assert {chunk.first_page for chunk in chunks} >= {1, 2, 3}
    for chunk in chunks:
        assert chunk.first_page <= chunk.last_page
        letters = _letters(chunk.text)
        assert letters[:30] in pages[chunk.first_page - 1], chunk.text[:80]
        assert letters[-30:] in pages[chunk.last_page - 1], chunk.text[-80:]


def test_pages_are_recorded_again_when_a_version_is_ingested_again(handbook):
    from kb.documents.services import document_version_ingest

    _, document, _ = handbook
    Chunk.objects.filter(version=document.current_version).update(first_page=None, last_page=None)

    document_version_ingest(version_id=document.current_version.pk)

    assert not Chunk.objects.filter(version=document.current_version, first_page__isnull=True).exists()


def _original_url(document) -> str:
    return reverse("documents:version-pdf", args=[document.current_version.pk])


def test_a_reader_gets_the_original_pdf_shown_inline(client, handbook):
    department, document, data = handbook
    reader = make_user(department=department)
    client.login(username=reader.username, password=PASSWORD)

    response = client.get(_original_url(document))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="python-faq.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"]


def test_another_departments_user_gets_404_and_nothing_of_the_file(client, handbook):
    _, document, _ = handbook
    outsider = make_user(department=make_department("Sales"))
    client.login(username=outsider.username, password=PASSWORD)

    response = client.get(_original_url(document))

    assert response.status_code == 404
    assert b"%PDF" not in response.content


def test_an_anonymous_visitor_is_sent_to_log_in(client, handbook):
    _, document, _ = handbook

    response = client.get(_original_url(document))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_original_is_read_only_and_only_pdfs_are_served_as_pdf(client, handbook):
    department, document, _ = handbook
    reader = make_user(department=department)
    client.login(username=reader.username, password=PASSWORD)
    notes = ingested_document(collection=document.collection, name="notes.md", content=b"# Notes\n\nPlain text.\n")

    assert client.post(_original_url(document)).status_code == 405
    assert client.get(_original_url(notes)).status_code == 404
