"""A refused or missing page is a page of the site with the reason; for htmx, the reason in the page's banner."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import make_department, make_superuser, make_user

pytestmark = pytest.mark.django_db


def _logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_employee_is_offered_no_documents_page_and_told_why_if_they_open_it():
    client = _logged_in(make_user(department=make_department("Legal")))

    assert reverse("documents:page") not in client.get(reverse("chat:page")).content.decode()
    response = client.get(reverse("documents:page"))

    assert response.status_code == 403
    page = response.content.decode()
    assert "Only department admins can upload documents." in page and reverse("chat:page") in page  # the site's menu


@pytest.mark.parametrize(
    ("who", "reason"),
    [
        ("department admin", "You manage no collection yet: create one on the Access page."),
        ("superuser", "There is no department yet: create one on the Organisation page first."),
    ],
)
def test_an_admin_without_a_collection_is_told_what_to_do_first(who, reason):
    user = make_user(department=make_department("Legal"), admin=True) if who != "superuser" else make_superuser()
    client = _logged_in(user)

    assert reverse("documents:page") in client.get(reverse("chat:page")).content.decode()
    response = client.get(reverse("documents:page"))

    assert response.status_code == 403 and reason in response.content.decode()


def test_a_missing_page_says_so_without_the_url_patterns_tried():
    response = _logged_in(make_user()).get("/no/such/page/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "Nothing is here" in page and "tried" not in page and reverse("chat:page") in page


def test_an_htmx_request_for_what_is_gone_gets_the_reason_for_the_banner_and_nothing_to_swap_in():
    client = _logged_in(make_user())

    response = client.get(reverse("chat:question", args=[999_999]), headers={"HX-Request": "true"})

    assert response.status_code == 404 and response["HX-Reswap"] == "none"
    assert response["Content-Type"].startswith("text/plain") and "Nothing is here" in response.content.decode()
