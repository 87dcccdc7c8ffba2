from functools import partial

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from kb.evaluation.models import MODES, EvaluationSet
from kb.evaluation.selectors import (
    EXPORT_FORMATS,
    departments_for_evaluation_sets,
    evaluation_question_get_for_manager,
    evaluation_run_get_for_manager,
    evaluation_runs_of_set,
    evaluation_set_file,
    evaluation_set_get_for_manager,
    evaluation_sets_manageable_by,
    run_answers_readable_by,
    run_comparison,
    scores_over_runs,
)
from kb.evaluation.services import (
    evaluation_question_add,
    evaluation_question_delete,
    evaluation_run_start,
    evaluation_set_create,
    evaluation_set_import,
)
from kb.platform.forms import submitted_id
from kb.platform.views import render_after_change, render_page

METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
# A run with answers: its summary["answers"] scores (evaluation.answers.answer_summary), as the run page names them.
ANSWER_METRICS = {
    "citation_accuracy": "Cites an expected passage",
    "citation_precision": "Citations that point to an expected passage",
    "key_fact_recall": "Key facts stated",
    "abstention": "Unanswerable questions refused",
    "false_refusal_rate": "Answerable questions refused",
}


def _departments(request: HttpRequest):
    departments = departments_for_evaluation_sets(user=request.user)
    if not departments.exists():
        raise PermissionDenied("Only department admins keep evaluation sets.")
    return departments


def _render_sets(request: HttpRequest, *, status: int = 200, **extra) -> HttpResponse:
    context = {
        "departments": _departments(request),
        "sets": evaluation_sets_manageable_by(user=request.user).prefetch_related("runs"),
        **extra,
    }
    return render_page(request, "evaluation/sets.html", partial="sets", context=context, status=status)


@login_required
@require_GET
def sets_page(request: HttpRequest) -> HttpResponse:
    return _render_sets(request)


@login_required
@require_POST
def set_create_view(request: HttpRequest) -> HttpResponse:
    department = get_object_or_404(_departments(request), pk=submitted_id(request.POST.get("department")))
    name = request.POST.get("name", "")
    auto_run = request.POST.get("auto_run") == "on"
    created: list[EvaluationSet] = []
    return render_after_change(
        lambda: created.append(
            evaluation_set_create(acting_user=request.user, name=name, department=department, auto_run=auto_run)
        ),
        lambda status=200, **extra: _render_sets(
            request, status=status, created=created[0] if created else None, **extra
        ),
    )


def _render_set(request: HttpRequest, evaluation_set: EvaluationSet, *, status: int = 200, **extra) -> HttpResponse:
    context = {
        "evaluation_set": evaluation_set,
        "questions": evaluation_set.questions.all(),
        "export_formats": list(EXPORT_FORMATS),
        **_runs_context(evaluation_set),
        **extra,
    }
    return render_page(request, "evaluation/set.html", partial="questions", context=context, status=status)


def _runs_context(evaluation_set: EvaluationSet) -> dict:
    runs = list(evaluation_runs_of_set(evaluation_set=evaluation_set)[:50])
    return {
        "evaluation_set": evaluation_set,
        "runs": runs,
        "running": any(not run.is_finished for run in runs),
        "chart": scores_over_runs(evaluation_set=evaluation_set),
        "chart_id": f"evaluation-chart-{evaluation_set.pk}",
    }


@login_required
@require_GET
def set_page(request: HttpRequest, set_id: int) -> HttpResponse:
    return _render_set(request, evaluation_set_get_for_manager(user=request.user, set_id=set_id))


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


@login_required
@require_POST
def question_add_view(request: HttpRequest, set_id: int) -> HttpResponse:
    evaluation_set = evaluation_set_get_for_manager(user=request.user, set_id=set_id)
    expected = [
        {"document": document.strip(), "span": span.strip()}
        for document, span in zip(request.POST.getlist("document"), request.POST.getlist("span"))
        if span.strip() or document.strip()
    ]
    return render_after_change(
        lambda: evaluation_question_add(
            acting_user=request.user,
            evaluation_set=evaluation_set,
            text=request.POST.get("text", ""),
            expected=expected,
            facts=_lines(request.POST.get("facts", "")),
            unanswerable=request.POST.get("unanswerable") == "on",
        ),
        partial(_render_set, request, evaluation_set),
    )


@login_required
@require_POST
def question_delete_view(request: HttpRequest, question_id: int) -> HttpResponse:
    question = evaluation_question_get_for_manager(user=request.user, question_id=question_id)
    evaluation_question_delete(acting_user=request.user, question=question)
    return _render_set(request, question.evaluation_set)


@login_required
@require_POST
def set_import_view(request: HttpRequest, set_id: int) -> HttpResponse:
    evaluation_set = evaluation_set_get_for_manager(user=request.user, set_id=set_id)
    upload = request.FILES.get("file")
    if upload is None:
        return _render_set(request, evaluation_set, status=400, error="Choose a CSV or JSON Lines file.")
    try:
        result = evaluation_set_import(
            acting_user=request.user,
            evaluation_set=evaluation_set,
            filename=upload.name,
            data=upload.read(),
            replace=request.POST.get("replace") == "on",
        )
    except ValidationError as error:
        return _render_set(request, evaluation_set, status=400, error=" ".join(error.messages))
    return _render_set(request, evaluation_set, imported=result)


@login_required
@require_GET
def set_export_view(request: HttpRequest, set_id: int, file_format: str) -> HttpResponse:
    evaluation_set = evaluation_set_get_for_manager(user=request.user, set_id=set_id)
    if file_format not in EXPORT_FORMATS:
        raise Http404("No such format")
    content, content_type = evaluation_set_file(evaluation_set=evaluation_set, file_format=file_format)
    response = HttpResponse(content, content_type=f"{content_type}; charset=utf-8")
    name = slugify(evaluation_set.name) or f"set-{evaluation_set.pk}"
    response["Content-Disposition"] = f'attachment; filename="{name}.{file_format}"'
    return response


def _render_runs(
    request: HttpRequest, evaluation_set: EvaluationSet, *, status: int = 200, error: str = ""
) -> HttpResponse:
    if request.htmx:
        context = {**_runs_context(evaluation_set), "run_error": error}
        return render_page(request, "evaluation/set.html", partial="runs", context=context, status=status)
    return _render_set(request, evaluation_set, status=status, error=error)


@login_required
@require_GET
def runs_partial(request: HttpRequest, set_id: int) -> HttpResponse:
    return _render_runs(request, evaluation_set_get_for_manager(user=request.user, set_id=set_id))


@login_required
@require_POST
def run_start_view(request: HttpRequest, set_id: int) -> HttpResponse:
    evaluation_set = evaluation_set_get_for_manager(user=request.user, set_id=set_id)
    answers = request.POST.get("answers") == "on"
    return render_after_change(
        lambda: evaluation_run_start(acting_user=request.user, evaluation_set=evaluation_set, answers=answers),
        partial(_render_runs, request, evaluation_set),
    )


@login_required
@require_GET
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = evaluation_run_get_for_manager(user=request.user, run_id=run_id)
    comparison = run_comparison(run=run)
    summary_rows = [
        {
            "mode": mode,
            "scores": [
                (run.summary.get(mode, {}).get(metric), comparison.deltas.get(mode, {}).get(metric))
                for metric in METRICS
            ],
        }
        for mode in MODES
    ]
    answer_scores = run.summary.get("answers") or {}
    answer_rows = [
        (label, answer_scores.get(name), comparison.deltas.get("answers", {}).get(name))
        for name, label in ANSWER_METRICS.items()
    ]
    context = {
        "run": run,
        "comparison": comparison,
        "metrics": METRICS,
        "summary_rows": summary_rows,
        "answer_rows": answer_rows if answer_scores else [],
        "answers_readable": run.answers and run_answers_readable_by(user=request.user, run=run),
        "modes": MODES,
    }
    return render_page(request, "evaluation/run.html", partial="run", context=context)
