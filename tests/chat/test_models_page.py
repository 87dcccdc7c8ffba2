import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_department, make_superuser, make_user

pytestmark = pytest.mark.django_db


def test_a_superuser_sees_the_loaded_model_its_state_and_the_presets(client):
    make_superuser()
    client.login(username="root", password=PASSWORD)

    page = client.get(reverse("chat:models")).content.decode()
    partial = client.get(reverse("chat:models"), headers={"HX-Request": "true"}).content.decode()

    assert "smollm2-135m" in page and "llama_cpp" in page and "status-ready" in page
    assert "qwen3.5-9b" in page and "Qwen/Qwen3.5-9B" in page
    assert "<td>vllm, llama_cpp, remote</td><td>CPU</td>" in page  # the CPU default's engines and where they run
    assert 'id="models"' in partial and "Presets" not in partial


def test_other_users_may_not_see_the_models_page(client):
    admin = make_user(department=make_department("Sales"), admin=True)
    client.login(username=admin.username, password=PASSWORD)

    assert client.get(reverse("chat:models")).status_code == 403
