"""Liveness, readiness, /metrics and its refusal, the operations page and who may see it."""

import json
from datetime import timedelta

import pytest
from celery import current_app
from django.urls import reverse
from django.utils import timezone

from kb.chat.generation import answer_backend
from kb.operations.models import OperationsSample
from kb.operations.services import worker_heartbeat_record, worker_heartbeat_stop
from tests.conftest import _free_port
from tests.factories import PASSWORD, make_department, make_superuser, make_user
from tests.inference.serving import Server

pytestmark = pytest.mark.django_db
TOKEN = "a-long-random-scraper-token"


@pytest.fixture
def serving_gone(settings):
    """The app pointed at a serving process that does not answer (nothing listens on its port)."""
    settings.KB_INFERENCE_URL = f"http://127.0.0.1:{_free_port()}"
    answer_backend.cache_clear()
    yield
    answer_backend.cache_clear()


def test_liveness_asks_nothing_and_answers(client):
    response = client.get("/healthz")

    assert response.status_code == 200 and response.json() == {"status": "alive"}


def test_readiness_checks_the_database_the_broker_and_the_engines(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"database": "ok", "broker": "ok", "serving": "ok"}}


def test_readiness_is_503_naming_the_serving_process_that_does_not_answer(client, serving_gone):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["checks"]["database"] == "ok"
    assert body["checks"]["serving"] == "unreachable (EngineUnavailable)"


def test_readiness_is_503_with_the_state_of_a_model_that_did_not_load(client, settings, tmp_path):
    missing = tmp_path / "secret-location" / "missing.gguf"
    server = Server(tmp_path, KB_VAR_DIR=str(tmp_path / "var"), KB_LLM_MODEL_PATH=str(missing))
    try:
        server.wait_until(ready=False)
        settings.KB_INFERENCE_URL, settings.KB_INFERENCE_API_KEY = server.url, server.api_key
        answer_backend.cache_clear()
        response = client.get("/readyz")
    finally:
        server.stop()
        answer_backend.cache_clear()

    assert response.status_code == 503
    assert response.json()["checks"]["serving"] == "not ready (smollm2-135m: failed to load)"
    assert "secret-location" not in response.content.decode()


def test_readiness_is_503_naming_the_broker_that_does_not_answer(client, monkeypatch):
    monkeypatch.setitem(current_app.conf, "broker_url", f"redis://127.0.0.1:{_free_port()}/0")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("unreachable (")
    assert "127.0.0.1" not in response.content.decode()  # the type of failure, not where


def test_worker_readiness_follows_the_heartbeat(client, settings):
    settings.KB_WORKER_HEARTBEAT_SECONDS = 30
    silent = client.get("/readyz/worker")
    worker_heartbeat_record(hostname="ingest@host-a", started_at=timezone.now())
    alive = client.get("/readyz/worker")

    assert silent.status_code == 503
    assert silent.json()["checks"]["worker"] == "no Celery worker has reported in the last 90 s"
    assert alive.status_code == 200 and alive.json()["workers"] == 1
    assert "host-a" not in alive.content.decode()  # anyone may ask: no host names

    worker_heartbeat_stop(hostname="ingest@host-a")
    assert client.get("/readyz/worker").status_code == 503


def test_a_worker_silent_for_three_heartbeats_is_taken_for_gone(client, settings):
    from kb.operations.models import WorkerHeartbeat

    settings.KB_WORKER_HEARTBEAT_SECONDS = 10
    worker_heartbeat_record(hostname="ingest@host-b", started_at=timezone.now())
    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(seconds=31))

    assert client.get("/readyz/worker").status_code == 503


def test_metrics_are_off_until_a_token_is_set(client, settings):
    settings.KB_METRICS_TOKEN = ""

    response = client.get("/metrics", headers={"Authorization": "Bearer anything"})

    assert response.status_code == 403 and "KB_METRICS_TOKEN" in response.content.decode()


@pytest.mark.parametrize("authorization", ["", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_refuse_a_missing_or_wrong_token(client, settings, authorization):
    settings.KB_METRICS_TOKEN = TOKEN

    response = client.get("/metrics", headers={"Authorization": authorization} if authorization else {})

    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"
    assert "kb_" not in response.content.decode()


def test_metrics_with_the_token_hold_the_apps_figures_and_the_engines(client, settings):
    settings.KB_METRICS_TOKEN = TOKEN
    client.get(reverse("login"))

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'kb_http_request_duration_seconds_bucket{le="0.5",method="GET",status="200",view="login"}' in text
    assert 'kb_ingestion_backlog{status="queued"}' in text and 'kb_disk_used_bytes{area="database"}' in text
    assert "kb_serving_up 1.0" in text
    # the engine this process hosts (no serving process in tests): its figures relayed once
    assert text.count("# TYPE kb_inference_requests_total counter") == 1
    assert 'kb_inference_running_requests{model="smollm2-135m"} 0.0' in text


def test_metrics_say_when_the_engines_figures_could_not_be_read(client, settings, serving_gone):
    settings.KB_METRICS_TOKEN = TOKEN

    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()

    assert "kb_serving_up 0.0" in text and "kb_inference_" not in text and "kb_http_request" in text


def _sample(minutes_ago: float, **figures) -> OperationsSample:
    return OperationsSample.objects.create(
        taken_at=timezone.now() - timedelta(minutes=minutes_ago), figures=figures, totals={}
    )


def _chart(page: str, key: str) -> dict:
    """The data a chart draws, from its json_script element."""
    opening = f'<script id="operations-chart-{key}" type="application/json">'
    return json.loads(page.split(opening)[1].split("</script>")[0])


def test_the_page_plots_the_sampled_figures_and_shows_the_engines(client):
    make_superuser()
    client.login(username="root", password=PASSWORD)
    _sample(3, http_p95=0.25, busy=None, media_bytes=2 * 1024**3)
    _sample(2, http_p95=0.5, busy=2.0, media_bytes=2 * 1024**3)
    _sample(60 * 7, http_p95=9.0)  # beyond the 6 hours shown by default

    page = client.get(reverse("operations:page")).content.decode()

    latency = _chart(page, "latency")
    assert latency["series"]["95th"] == [0.25, 0.5] and len(latency["x"]) == 2
    assert _chart(page, "errors")["series"]["busy"] == [None, 2.0]
    assert _chart(page, "memory")["series"]["uploads"] == [2.0, 2.0]  # GiB
    assert 'data-model="smollm2-135m"' in page and "status-ready" in page
    assert "vendor/uplot-1.6.32/uPlot.iife.min.js" in page and "charts.js" in page
    assert 'data-check="broker"' in page


def test_the_page_can_look_further_back_and_refreshes_as_a_partial(client):
    make_superuser()
    client.login(username="root", password=PASSWORD)
    _sample(60 * 7, http_p95=9.0)

    partial = client.get(reverse("operations:page"), {"hours": "24"}, headers={"HX-Request": "true"}).content.decode()

    assert partial.lstrip().startswith('<div id="operations"') and "<h1>" not in partial
    assert _chart(partial, "latency")["series"]["95th"] == [9.0]


def test_an_hours_value_the_page_does_not_offer_is_a_400_not_a_500(client):
    make_superuser()
    client.login(username="root", password=PASSWORD)

    response = client.get(reverse("operations:page"), {"hours": "1e9"})

    assert response.status_code == 400 and "Choose one of 1, 6, 24, 48 hours" in response.content.decode()


def test_only_superusers_see_the_operations_page(client):
    admin = make_user(department=make_department(), admin=True)
    anonymous = client.get(reverse("operations:page"))
    client.login(username=admin.username, password=PASSWORD)

    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert client.get(reverse("operations:page")).status_code == 403


def test_without_samples_the_page_says_what_fills_it(client):
    make_superuser()
    client.login(username="root", password=PASSWORD)

    page = client.get(reverse("operations:page")).content.decode()

    assert "No figures sampled yet" in page and "data-chart-source" not in page


def test_every_probe_is_answered_over_plain_http_where_https_is_required(client, settings):
    """Probes come over plain HTTP from the host or its orchestrator (kb/settings.py's SECURE_REDIRECT_EXEMPT): a
    redirect to HTTPS would be no answer, and an orchestrator takes a 3xx for a pass."""
    settings.SECURE_SSL_REDIRECT = True
    settings.KB_METRICS_TOKEN = TOKEN

    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz/worker").status_code == 503  # no worker here: answered, not redirected
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/documents/").status_code == 301  # the app itself goes to HTTPS
