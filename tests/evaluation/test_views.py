"""The evaluation pages: who may see and change what, POST for every change, and what the pages show."""

import pytest
from django.contrib.staticfiles import finders
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evaluation.sets import read_jsonl
from kb.audit.models import AuditEvent
from kb.evaluation.models import EvaluationRun, EvaluationSet
from kb.evaluation.services import evaluation_run_execute, evaluation_run_start
from tests.evaluation.conftest import leave_set
from tests.factories import PASSWORD, make_department, make_user

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def admin_client(client, hr):
    assert client.login(username=hr.admin.username, password=PASSWORD)
    return client


def _urls(evaluation_set: EvaluationSet, run: EvaluationRun) -> dict[str, tuple[str, str]]:
    question = evaluation_set.questions.first()
    return {
        "set": ("get", reverse("evaluation:set", args=[evaluation_set.pk])),
        "runs": ("get", reverse("evaluation:runs", args=[evaluation_set.pk])),
        "export": ("get", reverse("evaluation:set-export", args=[evaluation_set.pk, "jsonl"])),
        "run": ("get", reverse("evaluation:run", args=[run.pk])),
        "add": ("post", reverse("evaluation:question-add", args=[evaluation_set.pk])),
        "delete": ("post", reverse("evaluation:question-delete", args=[question.pk])),
        "import": ("post", reverse("evaluation:set-import", args=[evaluation_set.pk])),
        "start": ("post", reverse("evaluation:run-start", args=[evaluation_set.pk])),
    }


def test_another_department_s_admin_finds_nothing_and_changes_nothing(client, hr):
    evaluation_set = leave_set(hr)
    run = evaluation_run_start(acting_user=hr.admin, evaluation_set=evaluation_set, enqueue=False)
    stranger = make_user(department=make_department("Finance"), admin=True)
    assert client.login(username=stranger.username, password=PASSWORD)
    events = AuditEvent.objects.count()

    for name, (method, url) in _urls(evaluation_set, run).items():
        assert getattr(client, method)(url).status_code == 404, name

    assert AuditEvent.objects.count() == events and EvaluationRun.objects.count() == 1
    assert "Leave" not in client.get(reverse("evaluation:sets")).content.decode()


def test_a_member_who_administers_nothing_is_refused_and_sees_no_link(client, hr):
    member = make_user(department=hr.department)
    assert client.login(username=member.username, password=PASSWORD)

    assert client.get(reverse("evaluation:sets")).status_code == 403
    assert reverse("evaluation:sets") not in client.get(reverse("search:page")).content.decode()


def test_changes_are_posts_only(admin_client, hr):
    evaluation_set = leave_set(hr)
    run = evaluation_run_start(acting_user=hr.admin, evaluation_set=evaluation_set, enqueue=False)
    events = AuditEvent.objects.count()

    for name, (method, url) in _urls(evaluation_set, run).items():
        if method == "post":
            assert admin_client.get(url).status_code == 405, name
        else:
            assert admin_client.get(url).status_code == 200, name
    assert admin_client.get(reverse("evaluation:set-create")).status_code == 405

    assert AuditEvent.objects.count() == events and EvaluationRun.objects.count() == 1
    assert evaluation_set.questions.count() == 3


def test_an_admin_creates_a_set_adds_imports_exports_and_runs_it(admin_client, hr):
    page = admin_client.get(reverse("evaluation:sets"))
    assert reverse("evaluation:sets") in page.content.decode()  # the menu's link

    created = admin_client.post(
        reverse("evaluation:set-create"), {"name": "Policies", "department": hr.department.pk}, headers=HTMX
    )
    assert created.status_code == 200 and "Created" in created.content.decode()
    evaluation_set = EvaluationSet.objects.get(name="Policies")
    assert evaluation_set.created_by == hr.admin and not evaluation_set.auto_run
    set_url = reverse("evaluation:set", args=[evaluation_set.pk])

    added = admin_client.post(
        reverse("evaluation:question-add", args=[evaluation_set.pk]),
        {
            "text": "How many days of annual leave do I get?",
            "document": ["leave.md", ""],
            "span": ["Annual leave is 25 days a year", ""],
            "facts": "25 days\n",
        },
        headers=HTMX,
    )
    assert added.status_code == 200 and "Annual leave is 25 days a year" in added.content.decode()
    refused = admin_client.post(
        reverse("evaluation:question-add", args=[evaluation_set.pk]), {"text": "Where?"}, headers=HTMX
    )
    assert refused.status_code == 400 and "names no expected span" in refused.content.decode()

    bad = SimpleUploadedFile("set.jsonl", b'{"question": "ok?", "unanswerable": true}\n{"question": "b"}\n')
    response = admin_client.post(
        reverse("evaluation:set-import", args=[evaluation_set.pk]), {"file": bad}, headers=HTMX
    )
    assert response.status_code == 400 and "set.jsonl: line 2" in response.content.decode()
    good = SimpleUploadedFile("set.jsonl", b'{"question": "What is on the canteen menu?", "unanswerable": true}\n')
    response = admin_client.post(
        reverse("evaluation:set-import", args=[evaluation_set.pk]), {"file": good}, headers=HTMX
    )
    assert "Imported: 1 added" in response.content.decode()

    exported = admin_client.get(reverse("evaluation:set-export", args=[evaluation_set.pk, "jsonl"]))
    assert exported["Content-Disposition"] == 'attachment; filename="policies.jsonl"'
    assert [q.question for q in read_jsonl(exported.content.decode())] == [
        "How many days of annual leave do I get?",
        "What is on the canteen menu?",
    ]
    assert admin_client.get(reverse("evaluation:set-export", args=[evaluation_set.pk, "xml"])).status_code == 404

    started = admin_client.post(reverse("evaluation:run-start", args=[evaluation_set.pk]), headers=HTMX)
    body = started.content.decode()
    run = EvaluationRun.objects.get()
    assert run.owner == hr.admin and run.status == EvaluationRun.Status.QUEUED
    assert 'id="evaluation-runs"' in body and 'hx-trigger="every 2s"' in body and "0/2" in body
    assert 'id="evaluation-question-form"' not in body  # the runs partial alone

    evaluation_run_execute(run_id=run.pk)
    page = admin_client.get(set_url).content.decode()
    assert 'hx-trigger="every 2s"' not in page  # nothing left to poll for
    assert f'data-chart-source="evaluation-chart-{evaluation_set.pk}"' in page
    assert f'<script id="evaluation-chart-{evaluation_set.pk}" type="application/json">' in page
    assert "vendor/uplot-1.6.32/uPlot.iife.min.js" in page and "charts.js" in page
    run_page = admin_client.get(reverse("evaluation:run", args=[run.pk])).content.decode()
    assert "No earlier finished run" in run_page and "1.000" in run_page


def test_the_run_page_compares_with_the_previous_run(admin_client, hr):
    evaluation_set = leave_set(hr)
    for _ in range(2):
        run = evaluation_run_start(acting_user=hr.admin, evaluation_set=evaluation_set, enqueue=False)
        evaluation_run_execute(run_id=run.pk)

    page = admin_client.get(reverse("evaluation:run", args=[run.pk]), headers=HTMX).content.decode()

    assert page.count('data-verdict="same"') == 3
    assert "0 better, 0 worse, 3 the same" in " ".join(page.split())
    assert "<html" not in page  # the partial


def test_the_chart_library_is_served_from_the_app_itself():
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE", "SOURCE.md"):
        assert finders.find(f"vendor/uplot-1.6.32/{name}"), name
    assert finders.find("charts.js")
