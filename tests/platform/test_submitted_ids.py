"""Ids typed where the app expects a row's id: anything that cannot be one is a 4xx with the form's own reason or a
404, never a server error (the issue's five places, each reached by a user allowed to use the form)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from kb.platform.forms import submitted_id
from tests.factories import PASSWORD, make_collection, make_department, make_superuser, make_user

pytestmark = pytest.mark.django_db

NOT_IDS = ["abc", "1.5", "-3", " ", "99999999999999999999999", pytest.param("9" * 5000, id="5000 digits")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42", 42), (" 7 ", 7), ("0", None), (None, None), (str(2**63 - 1), 2**63 - 1), ("9" * 5000, None)],
)
def test_only_a_positive_bigint_is_an_id(value, expected):
    assert submitted_id(value) == expected


@pytest.fixture
def root(client):
    make_superuser()
    client.login(username="root", password=PASSWORD)


@pytest.fixture
def finance(client):
    """A department with a collection, and its admin logged in."""
    department = make_department("Finance")
    admin = make_user(department=department, admin=True)
    client.login(username=admin.username, password=PASSWORD)
    return make_collection(owner=department)


@pytest.mark.parametrize("value", NOT_IDS)
def test_a_search_for_a_collection_that_is_not_an_id_searches_everything_readable(client, root, value):
    response = client.post(reverse("search:page"), {"q": "lambda", "collection": value})

    assert response.status_code == 200


@pytest.mark.parametrize("value", NOT_IDS)
def test_an_upload_to_a_collection_that_is_not_an_id_is_refused_with_the_reason(client, finance, value):
    file = SimpleUploadedFile("notes.md", b"# Notes\n\nSome text.")

    response = client.post(reverse("documents:upload"), {"collection": value, "files": [file]})

    assert response.status_code == 400 and "Choose a collection you manage." in response.content.decode()


@pytest.mark.parametrize("value", NOT_IDS)
def test_a_grant_to_a_department_that_is_not_an_id_is_refused_with_the_reason(client, finance, value):
    response = client.post(reverse("documents:grant-create", args=[finance.pk]), {"department": value})

    assert (
        response.status_code == 400
        and "Choose a department or give one existing username." in response.content.decode()
    )


@pytest.mark.parametrize("value", NOT_IDS)
def test_a_collection_owned_by_a_department_that_is_not_an_id_is_not_found(client, finance, value):
    response = client.post(reverse("documents:collection-create"), {"owner": value, "name": "Handbook"})

    assert response.status_code == 404


@pytest.mark.parametrize("view", ["accounts:department-create", "accounts:department-move"])
@pytest.mark.parametrize("value", NOT_IDS[:3])
def test_a_department_parent_that_is_not_an_id_is_not_found(client, root, view, value):
    department = make_department("Payroll")
    args = [department.pk] if view.endswith("move") else []

    response = client.post(reverse(view, args=args), {"parent": value, "name": "Audit"})

    assert response.status_code == 404
