"""Operations on the whole stack `kb_run` starts (serving process, worker with its scheduler, web server): health,
/metrics holding the web's and the worker's figures and the engines', and the page plotting what the worker sampled."""

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from kb.documents.management.commands.kb_seed_demo import DEMO_PASSWORDS_FILE
from tests.conftest import PROJECT_ROOT, _free_port

pytestmark = pytest.mark.e2e
TOKEN = "scraper-token-for-the-test"


def _get(url: str, *, headers: dict[str, str] | None = None, opener=None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _until(check, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("operations") / "var"
    port = _free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "KB_MEDIA_ROOT", "KB_INFERENCE_URL", "KB_INFERENCE_API_KEY"}
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="kb.settings",
        KB_VAR_DIR=str(var_dir),
        KB_PORT=str(port),
        KB_INFERENCE_PORT=str(_free_port()),
        KB_INFERENCE_ROUTE="smollm2-135m=llama_cpp",
        KB_LLM_THREADS="1",
        KB_METRICS_TOKEN=TOKEN,
        KB_OPERATIONS_SAMPLE_SECONDS="2",
        KB_WORKER_HEARTBEAT_SECONDS="1",
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "kb_run"],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 300
        while not any("The knowledge base is ready at" in line for line in lines[-3:]):
            line = process.stdout.readline()
            assert line or process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        # Not a terminal: the demo's passwords are in their owner-only file, not in the output.
        passwords = (var_dir / DEMO_PASSWORDS_FILE).read_text()
        password = re.search(r"^\s+admin\s+(\S+)\s+superuser", passwords, re.MULTILINE).group(1)
        yield {"url": f"http://127.0.0.1:{port}", "password": password, "var_dir": var_dir}
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=90)


def test_the_web_processes_health_and_the_workers_heartbeat_answer(stack):
    assert _get(f"{stack['url']}/healthz") == (200, '{"status": "alive"}')
    status, body = _get(f"{stack['url']}/readyz")
    assert status == 200 and json.loads(body)["checks"] == {"database": "ok", "broker": "ok", "serving": "ok"}

    def worker_ready():
        answer = _get(f"{stack['url']}/readyz/worker")
        return answer[0] == 200 and answer

    status, body = _until(worker_ready, timeout=60, what="a worker heartbeat")
    assert json.loads(body)["workers"] >= 1


def test_metrics_hold_the_web_the_worker_and_the_engines_figures(stack):
    assert _get(f"{stack['url']}/metrics")[0] == 401

    def scraped_with_ingestion() -> str:
        _, text = _get(f"{stack['url']}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        return 'kb_ingested_documents_total{outcome="ready"}' in text and text

    text = _until(scraped_with_ingestion, timeout=240, what="a demo document ingested by the worker")

    assert 'view="login"' in text  # kb_run's own start-up checks, answered by the web process
    assert "kb_serving_up 1.0" in text and 'kb_inference_model_load_seconds{model="smollm2-135m"}' in text
    assert (stack["var_dir"] / "metrics").is_dir() and any((stack["var_dir"] / "metrics").glob("*.db"))


def test_the_page_plots_what_the_worker_sampled_and_shows_the_engine_and_worker(stack):
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    _, login = _get(f"{stack['url']}/accounts/login/", opener=opener)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login).group(1)
    form = {"username": "admin", "password": stack["password"], "csrfmiddlewaretoken": token}
    opener.open(f"{stack['url']}/accounts/login/", data=urllib.parse.urlencode(form).encode(), timeout=30)

    def page_with_latency() -> str:
        status, page = _get(f"{stack['url']}/operations/?hours=1", opener=opener)
        assert status == 200
        marker = '<script id="operations-chart-latency" type="application/json">'
        if marker not in page:
            return ""
        chart = json.loads(page.split(marker)[1].split("</script>")[0])
        return any(value is not None for value in chart["series"]["median"]) and page

    page = _until(page_with_latency, timeout=120, what="a sample with the web's latency, taken by the worker")

    assert 'data-model="smollm2-135m"' in page and "llama_cpp" in page
    assert re.search(r"ingest@\S+</td>\s*<td class=\"status-ready\">alive", page)
