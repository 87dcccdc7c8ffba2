"""The auditor's workspace (query log, record detail, streamed exports) and everyone's own question history."""

import json

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kb.audit.exports import in_request_thread, query_log_csv, query_log_jsonl
from kb.audit.models import QueryFeedback, QueryRecord
from kb.audit.selectors import (
    FeedbackFilter,
    QueryLogFilters,
    can_audit_queries,
    query_feedback_latest,
    query_record_get_for_auditor,
    query_record_get_for_feedback,
    query_record_get_for_owner,
    query_records_for_auditor,
    query_records_of_user,
)
from kb.audit.services import audit_export_record, query_feedback_create
from kb.platform.views import render_page

QUERIES_PER_PAGE = 50
# The list shows none of these; leaving them out keeps a page of 50 records small whatever their answers' length.
_LIST_DEFERRED = ("answer", "thinking", "route", "generation_params", "scope", "permission_filter", "citations")


class QueryLogFilterForm(forms.Form):
    username = forms.CharField(required=False, max_length=150)
    department = forms.CharField(required=False, max_length=120)
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    text = forms.CharField(
        required=False,
        max_length=500,
        label="Text in question or answer",
        widget=forms.TextInput(attrs={"type": "search"}),
    )
    model = forms.CharField(required=False, max_length=200)
    flagged = forms.BooleanField(required=False, label="Flagged only")
    feedback = forms.ChoiceField(required=False, choices=[("", "With or without"), *FeedbackFilter.choices])

    OWNER_FIELDS = ("date_from", "date_to", "text", "model", "flagged", "feedback")

    def __init__(self, *args, auditing: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not auditing:  # one's own history has no one else's name or department to look for
            for name in list(self.fields):
                if name not in self.OWNER_FIELDS:
                    del self.fields[name]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_from"] > cleaned["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned

    def filters(self) -> QueryLogFilters:
        return QueryLogFilters(**{name: value for name, value in self.cleaned_data.items() if value is not None})


def _render_list(request: HttpRequest, *, auditing: bool) -> HttpResponse:
    """GET: the newest records. Filters, the page of a filtered list and the exports are POSTed: the words an auditor
    looks for are words people asked, and stay out of URLs, access logs and browser history."""
    form = QueryLogFilterForm(request.POST if request.method == "POST" else {}, auditing=auditing)
    valid = form.is_valid()
    if auditing:
        records = query_records_for_auditor(user=request.user, filters=form.filters() if valid else None)
    else:
        records = query_records_of_user(user=request.user, filters=form.filters() if valid else None)
    # An invalid filter shows no records rather than more than was asked for.
    page = Paginator(records.defer(*_LIST_DEFERRED) if valid else records.none(), QUERIES_PER_PAGE).get_page(
        request.POST.get("page") if request.method == "POST" else request.GET.get("page")
    )
    name = "audit/query_list.html"
    context = {
        "form": form,
        "page": page,
        "auditing": auditing,
        "list_url": reverse("audit:queries" if auditing else "audit:history"),
    }
    return render_page(request, name, context, partial="results", status=200 if valid else 400)


@login_required
@require_http_methods(["GET", "POST"])
def query_log_page(request: HttpRequest) -> HttpResponse:
    if not can_audit_queries(request.user):  # the selector checks too; this answers before the form is read
        raise PermissionDenied("Only compliance auditors read the query log.")
    return _render_list(request, auditing=True)


_JSON_FIELDS = ("route", "generation_params", "scope", "permission_filter", "citations")


def _render_record(request: HttpRequest, record: QueryRecord, *, auditing: bool, **extra) -> HttpResponse:
    as_json = {
        name: json.dumps(getattr(record, name), indent=2, ensure_ascii=False, sort_keys=True) for name in _JSON_FIELDS
    }
    return render_page(
        request,
        "audit/query_detail.html",
        partial="record",
        context={"record": record, "auditing": auditing, "as_json": as_json, **extra},
    )


@login_required
@require_GET
def query_record_page(request: HttpRequest, record_id: int) -> HttpResponse:
    record = query_record_get_for_auditor(user=request.user, record_id=record_id)
    return _render_record(request, record, auditing=True)


def _export(request: HttpRequest, *, export_format: str) -> HttpResponse:
    if not can_audit_queries(request.user):
        raise PermissionDenied("Only compliance auditors export the query log.")
    form = QueryLogFilterForm(request.POST, auditing=True)
    if not form.is_valid():
        # Never export more than was asked for because a filter could not be read.
        return HttpResponseBadRequest(
            "Invalid filters: " + "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
        )
    filters = form.filters()
    records = query_records_for_auditor(user=request.user, filters=filters)
    # On the audit trail (committed) before the first byte leaves.
    audit_export_record(actor=request.user, export_format=export_format, filters=filters.as_audit_dict())
    if export_format == "csv":
        chunks, content_type = query_log_csv(records), "text/csv; charset=utf-8"
    else:
        chunks, content_type = query_log_jsonl(records), "application/x-ndjson; charset=utf-8"
    response = StreamingHttpResponse(
        in_request_thread(chunks) if isinstance(request, ASGIRequest) else chunks, content_type=content_type
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="query-log-{stamp}.{export_format}"'
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST  # it writes to the audit trail: never on a link followed, a prefetch or another site's navigation
def query_log_export_csv(request: HttpRequest) -> HttpResponse:
    return _export(request, export_format="csv")


@login_required
@require_POST  # it writes to the audit trail: never on a link followed, a prefetch or another site's navigation
def query_log_export_jsonl(request: HttpRequest) -> HttpResponse:
    return _export(request, export_format="jsonl")


@login_required
@require_http_methods(["GET", "POST"])
def history_page(request: HttpRequest) -> HttpResponse:
    return _render_list(request, auditing=False)


@login_required
@require_GET
def history_record_page(request: HttpRequest, record_id: int) -> HttpResponse:
    record = query_record_get_for_owner(user=request.user, record_id=record_id)
    return _render_record(request, record, auditing=False, feedback=query_feedback_latest(record=record))


@login_required
@require_POST
def feedback_create_view(request: HttpRequest, record_id: int) -> HttpResponse:
    record = query_record_get_for_feedback(user=request.user, record_id=record_id)  # 404, or 403 if not the asker
    try:
        rating = int(request.POST.get("rating", ""))
    except ValueError:
        rating = 0
    if rating not in QueryFeedback.Rating.values:
        return render(
            request, "audit/feedback.html", {"record": record, "error": "Choose helpful or not helpful."}, status=400
        )
    try:
        feedback = query_feedback_create(
            user=request.user, record=record, rating=rating, comment=request.POST.get("comment", "")
        )
    except ValidationError as error:
        return render(request, "audit/feedback.html", {"record": record, "error": error.messages[0]}, status=400)
    if not request.htmx:
        return redirect("audit:history-detail", record_id=record.pk)
    return render(request, "audit/feedback.html", {"record": record, "feedback": feedback, "thanks": True})
