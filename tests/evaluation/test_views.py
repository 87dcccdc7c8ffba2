"""The evaluation pages: who may see and change what, POST for every change, and what the pages show."""

import pytest
from django.contrib.staticfiles import finders
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from evaluation.sets import read_jsonl
from kb.audit.models import AuditEvent
from kb.documents.services import grant_create
from kb.evaluation.models import EvaluationResult, EvaluationRun, EvaluationSet
from kb.evaluation.services import evaluation_run_execute, evaluation_run_start
from kb.platform.actors import system_actor
from tests.evaluation.conftest import leave_set
from tests.factories import PASSWORD, ingested_document, make_collection, make_department, make_user

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
    assert run.owner == hr.admin and run.status == EvaluationRun.Status.QUEUED and not run.answers
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


def test_a_run_with_answers_starts_from_the_form_and_its_page_shows_each_answer_and_its_scores(admin_client, hr):
    evaluation_set = leave_set(hr)
    admin_client.post(reverse("evaluation:run-start", args=[evaluation_set.pk]), {"answers": "on"}, headers=HTMX)
    run = EvaluationRun.objects.get()
    assert run.answers
    # What the worker records (tests/evaluation/test_answers.py runs it for real).
    leave, expenses, canteen = evaluation_set.questions.all()
    common = {"run": run, "modes": {"hybrid": {"rank": 1, "chunk_ids": [], "ndcg": 1.0}}}
    EvaluationResult.objects.create(
        **common,
        question=leave,
        question_text=leave.text,
        answer="<b>25 days</b> a year [1]",
        answer_citations=[{"number": 1, "chunk_id": 4242, "document": "leave.md", "expected": True}],
        answer_cites_expected=True,
        answer_facts=[{"fact": "25 days", "stated": True}],
        answer_abstained=False,
    )
    EvaluationResult.objects.create(
        **common, question=expenses, question_text=expenses.text, answer_error="Every model is busy."
    )
    EvaluationResult.objects.create(
        question=canteen,
        question_text=canteen.text,
        unanswerable=True,
        run=run,
        modes={"hybrid": {}},
        answer="The documents do not say.",
        answer_abstained=True,
    )
    run.status, run.finished_at = EvaluationRun.Status.DONE, timezone.now()
    run.configuration = {"llm": {"model": "smollm2-135m", "max_tokens": 64}, "document_versions": []}
    run.summary = {
        "questions": {"answerable": 2, "unanswerable": 1},
        "answers": {
            "citation_accuracy": 1.0,
            "citation_precision": 1.0,
            "key_fact_recall": 1.0,
            "abstention": 1.0,
            "false_refusal_rate": 0.0,
            "answerable": 1,
            "unanswerable": 1,
            "failed": 1,
        },
    }
    run.save()

    page = " ".join(admin_client.get(reverse("evaluation:run", args=[run.pk])).content.decode().split())

    assert "answered by <code>smollm2-135m</code> in at most 64 tokens" in page
    assert "<strong>1 answer failed</strong>" in page
    assert "<th>Cites an expected passage</th><td>1.000" in page and "<th>Key facts stated</th><td>1.000" in page
    assert "&lt;b&gt;25 days&lt;/b&gt; a year [1]" in page and "<b>25 days" not in page  # the answer is text
    assert f'<a href="{reverse("search:passage", args=[4242])}" title="leave.md">[1]</a>&nbsp;expected' in page
    assert '<span title="✓ 25 days">1/1</span>' in page
    assert '<span class="error">Every model is busy.</span>' in page
    assert page.count('data-answer-verdict="new"') == 2  # the failed answer has none
    set_page = admin_client.get(reverse("evaluation:set", args=[evaluation_set.pk])).content.decode()
    assert 'name="answers"' in set_page


def test_the_chart_library_is_served_from_the_app_itself():
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE", "SOURCE.md"):
        assert finders.find(f"vendor/uplot-1.6.32/{name}"), name
    assert finders.find("charts.js")


def test_a_run_s_answers_are_shown_only_to_those_who_may_read_what_its_owner_could(client, hr):
    """Answers are made from what the run's owner may read: another admin of the set's department, who may not read
    a collection granted to the owner alone, sees the scores but neither the answers' text nor the cited documents."""
    legal = make_department("Legal")
    secret = make_collection(owner=legal, name="Legal secrets")
    document = ingested_document(collection=secret, name="settlement.md", content=b"# Settlement\nWe paid 9 million.\n")
    grant_create(acting_user=system_actor(), collection=secret, user=hr.admin)
    colleague = make_user(department=hr.department, admin=True, username="hr-colleague")
    evaluation_set = leave_set(hr)
    run = evaluation_run_start(acting_user=hr.admin, evaluation_set=evaluation_set, answers=True, enqueue=False)
    question = evaluation_set.questions.first()
    EvaluationResult.objects.create(
        run=run,
        question=question,
        question_text=question.text,
        modes={"hybrid": {"rank": 1, "chunk_ids": [], "ndcg": 1.0}},
        answer="The settlement was 9 million [1].",
        answer_citations=[{"number": 1, "chunk_id": 4242, "document": "settlement.md", "expected": False}],
        answer_cites_expected=False,
        answer_abstained=False,
    )
    run.status, run.finished_at = EvaluationRun.Status.DONE, timezone.now()
    run.configuration = {
        "llm": {"model": "smollm2-135m", "max_tokens": 64},
        "document_versions": [document.current_version_id],
    }
    run.summary = {"questions": {"answerable": 1, "unanswerable": 0}, "answers": {"citation_accuracy": 0.0}}
    run.save()

    client.force_login(colleague)
    page = client.get(reverse("evaluation:run", args=[run.pk])).content.decode()
    assert "9 million" not in page and "settlement.md" not in page
    assert "Cites an expected passage" in page  # the scores stay

    client.force_login(hr.admin)
    page = client.get(reverse("evaluation:run", args=[run.pk])).content.decode()
    assert "9 million" in page and "settlement.md" in page
