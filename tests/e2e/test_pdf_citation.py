"""A cited PDF passage in the browser: its page drawn by the vendored pdf.js, the passage highlighted on it, on a
phone-width screen, whether the passage is opened as a page or swapped into a panel by htmx."""

import pytest
from django.urls import reverse

from kb.documents.models import Chunk
from tests.e2e.pages import ingested_by_the_worker, log_in
from tests.factories import make_collection, make_department, make_user, upload
from tests.pdfs import faq_handbook_pdf

sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 800}


def _expect_page_drawn_with_the_passage_highlighted(page) -> None:
    viewer = page.locator("[data-pdf-passage].rendered")
    sync_api.expect(viewer).to_be_visible(timeout=30_000)
    assert viewer.locator("canvas").evaluate("canvas => canvas.width > 0 && canvas.height > 0")
    # Something was drawn: the canvas is not blank white.
    assert viewer.locator("canvas").evaluate(
        "canvas => canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data"
        ".some((value, index) => index % 4 !== 3 && value < 128)"
    )
    sync_api.expect(viewer.locator(".textLayer .passage-highlight").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_pdf_passage_shows_its_page_with_the_passage_highlighted(live_stack, browser, settings, python_docs):
    settings.MEDIA_ROOT = live_stack["media_root"]  # where the worker and the web server read the originals
    department = make_department("Engineering")
    make_user(department=department, username="erin")
    data, _ = faq_handbook_pdf(python_docs)
    admin = make_user(department=department, admin=True)
    version = upload(user=admin, collection=make_collection(owner=department), name="python-faq.pdf", content=data)
    ingested_by_the_worker(version)
    chunk = Chunk.objects.filter(version=version, first_page=2).first()
    passage_url = reverse("search:passage", args=[chunk.pk])
    page = log_in(browser, live_stack["url"], "erin", viewport=PHONE)

    page.goto(passage_url)
    _expect_page_drawn_with_the_passage_highlighted(page)

    page.goto(reverse("search:page"))  # a panel filled by htmx, as the ask page's citations fill theirs
    page.evaluate(f"htmx.ajax('GET', '{passage_url}', {{target: 'main', swap: 'innerHTML'}})")
    _expect_page_drawn_with_the_passage_highlighted(page)
