"""What a citation opens: a PDF passage on its page, a log window as its lines with its time range, anything else
(and a PDF ingested before pages were recorded) in its section."""

import pytest
from bs4 import BeautifulSoup
from django.urls import reverse

from kb.documents.models import Chunk
from tests.factories import PASSWORD, ingested_document, make_collection, make_department, make_user
from tests.pdfs import faq_handbook_pdf

pytestmark = pytest.mark.django_db

SYSLOG = (
    "2025-03-03T10:00:11+00:00 web-1 sshd[411]: Failed password for root from 10.0.0.9 port 22 ssh2\n"
    "2025-03-03T10:02:40+00:00 web-1 sshd[411]: Accepted publickey for deploy from 10.0.0.7 port 50122 ssh2\n"
    f'2025-03-03T10:04:05+00:00 db-2 postgres[77]: ERROR:  relation "orders" does not exist {"x" * 300}\n'
)


@pytest.fixture
def reader(client):
    department = make_department("Engineering")
    user = make_user(department=department)
    client.login(username=user.username, password=PASSWORD)
    return make_collection(owner=department)


def _passage(client, chunk: Chunk, **headers) -> BeautifulSoup:
    response = client.get(reverse("search:passage", args=[chunk.pk]), **headers)
    assert response.status_code == 200
    return BeautifulSoup(response.content, "html.parser")


def test_a_pdf_passage_from_page_two_opens_that_page_in_the_viewer(client, reader, python_docs):
    data, _ = faq_handbook_pdf(python_docs)
    document = ingested_document(collection=reader, name="python-faq.pdf", content=data)
    chunk = Chunk.objects.filter(version=document.current_version, first_page=2).first()

    page = _passage(client, chunk, HTTP_HX_REQUEST="true")

    viewer = page.select_one("[data-pdf-passage]")
    original = reverse("documents:version-pdf", args=[document.current_version.pk])
    assert viewer["data-page"] == "2"
    assert viewer["data-pdf-url"] == original
    assert viewer["data-passage"] == chunk.text
    assert viewer["data-pdfjs"].endswith("/pdf.min.mjs") and viewer["data-pdfjs-worker"].endswith(".mjs")
    assert page.find("a", string=lambda text: text and "Open the PDF at page" in text)["href"] == f"{original}#page=2"
    assert chunk.text.split("\n")[0] in page.select_one(".passage-text").get_text()
    assert page.find("script") is None  # behaviour lives in static files, for a strict CSP


def test_a_pdf_ingested_before_pages_were_recorded_shows_its_section(client, reader, python_docs):
    data, _ = faq_handbook_pdf(python_docs)
    document = ingested_document(collection=reader, name="python-faq.pdf", content=data)
    Chunk.objects.filter(version=document.current_version).update(first_page=None, last_page=None)
    chunk = Chunk.objects.filter(version=document.current_version).first()

    page = _passage(client, chunk)

    assert page.select_one("[data-pdf-passage]") is None
    assert "section “" in page.select_one(".passage").get_text()
    assert page.select_one(".passage-text") is not None


def test_a_log_window_shows_its_lines_with_time_range_hosts_and_severities(client, reader):
    document = ingested_document(collection=reader, name="auth.log", content=SYSLOG.encode())
    chunk = Chunk.objects.get(version=document.current_version)

    page = _passage(client, chunk)

    window = page.select_one(".log-window").get_text(" ", strip=True)
    assert "2025-03-03 10:00:11 UTC – 2025-03-03 10:04:05 UTC" in " ".join(window.split())
    assert "db-2, web-1" in window
    assert "error 1" in window.lower()
    lines = page.select_one("pre.log-lines").get_text().splitlines()
    assert lines == SYSLOG.splitlines()
