"""kb/platform/sessions.py: a session cookie that no session key could be is no session, never a server error."""

import pytest

from tests.factories import PASSWORD, make_department, make_user

pytestmark = pytest.mark.django_db

NOT_SESSION_KEYS = ['"\\000\\000\\000\\000\\000\\000\\000\\000"', "\x00" * 8, "ünïcödé-kéy-0123", "a" * 5000]


@pytest.mark.parametrize("cookie", NOT_SESSION_KEYS, ids=["quoted NULs", "NULs", "non-ASCII", "5000 letters"])
def test_a_session_cookie_no_key_could_be_is_sent_to_log_in(client, cookie):
    client.cookies["sessionid"] = cookie

    response = client.get("/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_real_session_still_signs_in(client):
    make_user(department=make_department("Legal"), username="alice")
    client.login(username="alice", password=PASSWORD)

    assert client.get("/").status_code == 200
