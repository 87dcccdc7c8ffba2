"""A NUL character in a form field or query parameter is refused with the field's name, before any view's query; so is
a request whose declared charset could decode its text into what PostgreSQL cannot store."""

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from kb.accounts.models import Department
from tests.factories import PASSWORD, make_department, make_superuser, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    make_superuser()
    client.login(username="root", password=PASSWORD)
    return client


def test_a_form_field_with_a_nul_character_is_refused_by_name_and_changes_nothing(superuser_client):
    response = superuser_client.post("/organisation/departments/", {"name": "Legal\x00"})

    assert response.status_code == 400
    assert "“name” contains a NUL character" in response.content.decode()
    assert not Department.objects.filter(name__startswith="Legal").exists()


def test_a_query_parameter_with_a_nul_character_is_refused_by_name(client):
    make_user(department=make_department("Legal"), username="alice")
    client.login(username="alice", password=PASSWORD)

    response = client.get("/search/", {"q": "notice\x00 period"})

    assert response.status_code == 400 and "“q” contains a NUL character" in response.content.decode()


def test_the_streamed_answer_refuses_a_nul_character_under_asgi_as_well():
    alice = make_user(department=make_department("Legal"), username="alice")

    async def ask():
        client = AsyncClient()
        await client.aforce_login(alice)
        return await client.get("/stream/", {"q": "notice\x00 period"})

    response = async_to_sync(ask)()

    assert response.status_code == 400 and "“q” contains a NUL character" in response.content.decode()


def test_a_form_posted_under_asgi_is_parsed_off_the_event_loop_and_refused_the_same():
    root = make_superuser()

    async def create():
        client = AsyncClient()
        await client.aforce_login(root)
        return await client.post("/organisation/departments/", {"name": "Legal\x00"})

    assert async_to_sync(create)().status_code == 400
    assert not Department.objects.filter(name__startswith="Legal").exists()


def test_the_same_form_without_a_nul_character_goes_through(superuser_client):
    superuser_client.post("/organisation/departments/", {"name": "Legal"})

    assert Department.objects.filter(name="Legal").exists()


def test_an_anonymous_form_is_not_read_for_nul_characters_but_sent_to_log_in(client):
    response = client.post("/organisation/departments/", {"name": "Legal\x00"})

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_login_form_refuses_a_nul_character_itself(client):
    make_user(department=make_department("Legal"), username="alice")

    response = client.post("/accounts/login/", {"username": "alice\x00", "password": PASSWORD})

    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert "didn't match" in response.content.decode()


LONE_SURROGATE_BODY = b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nLegal \\ud800\r\n--b--\r\n'


def test_a_form_in_a_charset_that_decodes_to_a_lone_surrogate_is_refused_and_changes_nothing(superuser_client):
    response = superuser_client.post(
        "/organisation/departments/",
        LONE_SURROGATE_BODY,
        content_type="multipart/form-data; boundary=b; charset=unicode_escape",
    )

    assert response.status_code == 400 and "read as UTF-8 only" in response.content.decode()
    assert not Department.objects.filter(name__startswith="Legal").exists()


def test_the_login_form_in_such_a_charset_is_refused_too(client):
    response = client.post(
        "/accounts/login/",
        b"username=alice%5Cud800&password=x",
        content_type="application/x-www-form-urlencoded; charset=unicode_escape",
    )

    assert response.status_code == 400 and "read as UTF-8 only" in response.content.decode()


def test_a_form_that_says_it_is_utf_8_goes_through(superuser_client):
    superuser_client.post(
        "/organisation/departments/",
        "name=L%C3%A9gal",
        content_type="application/x-www-form-urlencoded; charset=UTF-8",
    )

    assert Department.objects.filter(name="Légal").exists()
