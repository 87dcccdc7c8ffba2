"""Reads of evaluation sets and runs, for the admins of the set's department (superusers: every set)."""

from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404

from evaluation.sets import EvalQuestion, ExpectedSpan, write_csv, write_jsonl
from kb.accounts.models import Department, User
from kb.accounts.selectors import departments_administered_by
from kb.documents.models import Document, DocumentVersion, EmbeddingModel
from kb.documents.selectors import chunks_readable_by, collections_readable_by
from kb.evaluation.models import MODES, EvaluationQuestion, EvaluationResult, EvaluationRun, EvaluationSet
from kb.search.selectors import PassageHit


def departments_for_evaluation_sets(*, user: User) -> QuerySet[Department]:
    """Where the user may keep evaluation sets: the departments they administer."""
    if not user.is_authenticated or not user.is_active:
        return Department.objects.none()
    return departments_administered_by(user=user)


def evaluation_sets_manageable_by(*, user: User) -> QuerySet[EvaluationSet]:
    return EvaluationSet.objects.filter(department__in=departments_for_evaluation_sets(user=user)).select_related(
        "department", "created_by"
    )


def evaluation_set_get_for_manager(*, user: User, set_id: int) -> EvaluationSet:
    evaluation_set = evaluation_sets_manageable_by(user=user).filter(pk=set_id).first()
    if evaluation_set is None:
        raise Http404("No such evaluation set")
    return evaluation_set


def evaluation_question_get_for_manager(*, user: User, question_id: int) -> EvaluationQuestion:
    question = (
        EvaluationQuestion.objects.filter(evaluation_set__in=evaluation_sets_manageable_by(user=user), pk=question_id)
        .select_related("evaluation_set__department")
        .first()
    )
    if question is None:
        raise Http404("No such question")
    return question


def evaluation_run_get_for_manager(*, user: User, run_id: int) -> EvaluationRun:
    run = (
        EvaluationRun.objects.filter(evaluation_set__in=evaluation_sets_manageable_by(user=user), pk=run_id)
        .select_related("evaluation_set__department", "owner")
        .first()
    )
    if run is None:
        raise Http404("No such evaluation run")
    return run


def eval_question_of(question: EvaluationQuestion) -> EvalQuestion:
    return EvalQuestion(
        question=question.text,
        expected=tuple(ExpectedSpan(document=e["document"], span=e["span"]) for e in question.expected),
        facts=tuple(question.facts),
        unanswerable=question.unanswerable,
    )


EXPORT_FORMATS = {"jsonl": ("application/x-ndjson", write_jsonl), "csv": ("text/csv", write_csv)}


def evaluation_set_file(*, evaluation_set: EvaluationSet, file_format: str) -> tuple[str, str]:
    """The set as a file that its import reads back: (content, content type)."""
    content_type, writer = EXPORT_FORMATS[file_format]
    return writer(eval_question_of(question) for question in evaluation_set.questions.all()), content_type


def document_names_of_hits(*, hits: list[PassageHit]) -> dict[int, str]:
    """The original names of the documents a search returned (to its user, who may read them): what spans name."""
    ids = {hit.document_id for hit in hits}
    return dict(Document.objects.filter(pk__in=ids).values_list("pk", "original_name")) if ids else {}


def configuration_snapshot(*, user: User, k: int, modes: tuple[str, ...], llm: dict | None = None) -> dict:
    """What a run ran with, so that two runs' scores can be told apart by their cause; `llm`: the answering model and
    its sampling, for a run that answers (None: retrieval and abstention only)."""
    model = EmbeddingModel.objects.filter(state=EmbeddingModel.State.ACTIVE).values("name", "path", "dimensions")
    versions = list(
        chunks_readable_by(user=user).order_by("version_id").values_list("version_id", flat=True).distinct()
    )
    return {
        "embedding_model": model.first(),
        "query_encoder": settings.KB_QUERY_ENCODER,
        "chunk_tokens": settings.KB_CHUNK_TOKENS,
        "chunk_overlap_tokens": settings.KB_CHUNK_OVERLAP_TOKENS,
        "retrieval_top_k": settings.KB_RETRIEVAL_TOP_K,
        "fusion": settings.KB_FUSION,
        "fusion_dense_weight": settings.KB_FUSION_DENSE_WEIGHT,
        "rrf_k": settings.KB_RRF_K,
        "keyword_max_candidates": settings.KB_KEYWORD_MAX_CANDIDATES,
        "reranker_model_path": settings.KB_RERANKER_MODEL_PATH,
        "abstain_below_similarity": settings.KB_ABSTAIN_BELOW_SIMILARITY,
        "k": k,
        "modes": list(modes),
        "llm": llm,
        "document_versions": versions,
    }


def run_answers_readable_by(*, user: User, run: EvaluationRun) -> bool:
    """Whether the user may see the run's answers (their text and the documents they cite): they were made from what
    the run's owner could read when it ran, and another admin of the set's department may not read all of it (a
    collection granted to the owner alone). Shown only to those who may read now every collection of the document
    versions the run could read (configuration["document_versions"]); the scores are numbers and stay shown."""
    versions = run.configuration.get("document_versions")
    if versions is None:  # the run has not read its configuration yet: it has no answer either
        return False
    collections = DocumentVersion.objects.filter(pk__in=versions).values("document__collection")
    return not collections.exclude(document__collection__in=collections_readable_by(user=user)).exists()


def evaluation_runs_of_set(*, evaluation_set: EvaluationSet) -> QuerySet[EvaluationRun]:
    return evaluation_set.runs.select_related("owner")


def scores_over_runs(*, evaluation_set: EvaluationSet, mode: str = "hybrid") -> dict:
    """Recall@5 and MRR@10 of the set's finished runs, oldest first, as the chart draws them (x: Unix seconds)."""
    runs = evaluation_set.runs.filter(status=EvaluationRun.Status.DONE).order_by("finished_at", "pk")
    rows = [(run.pk, run.finished_at, run.summary.get(mode) or {}) for run in runs]
    return {
        "runs": [pk for pk, _, _ in rows],
        "x": [int(finished.timestamp()) for _, finished, _ in rows],
        "series": {
            "Recall@5": [scores.get("recall@5") for _, _, scores in rows],
            "MRR@10": [scores.get("mrr@10") for _, _, scores in rows],
        },
    }


@dataclass(frozen=True)
class QuestionChange:
    question: str
    unanswerable: bool
    before: EvaluationResult | None
    after: EvaluationResult
    verdict: str  # "better", "worse", "same", "new"
    # By the answer's scores; "" when this run has no answer to it. Also "mixed" (one score up, another down).
    answer_verdict: str = ""


@dataclass
class RunComparison:
    previous: EvaluationRun | None
    changes: list[QuestionChange] = field(default_factory=list)
    # {"hybrid": {"recall@5": +0.1, ...}, ..., "answers": {"citation_accuracy": ...}}: this run's score less the
    # previous run's
    deltas: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def counts(self) -> Counter:
        return Counter(change.verdict for change in self.changes)

    @property
    def answer_counts(self) -> Counter:
        return Counter(change.answer_verdict for change in self.changes if change.answer_verdict)


NOT_FOUND_RANK = 11  # a question whose relevant passage is not in the top 10 ranks below every one that is


def _verdict(before: EvaluationResult | None, after: EvaluationResult) -> str:
    if before is None:
        return "new"
    if after.unanswerable:
        # An unanswerable question: "not in the sources" is the right outcome.
        return "same" if before.abstained == after.abstained else ("better" if after.abstained else "worse")
    old, new = (result.rank("hybrid") or NOT_FOUND_RANK for result in (before, after))
    return "same" if old == new else ("better" if new < old else "worse")


def _answer_scores(result: EvaluationResult) -> tuple[float, ...]:
    """What an answer is judged by, each the higher the better: an unanswerable question's by its refusal; an
    answerable one's by citing an expected passage, the share of its key facts stated, and not refusing."""
    if result.unanswerable:
        return (float(bool(result.answer_abstained)),)
    facts = result.facts_stated / len(result.answer_facts) if result.answer_facts else 0.0
    return (float(bool(result.answer_cites_expected)), facts, float(not result.answer_abstained))


def _answer_verdict(before: EvaluationResult | None, after: EvaluationResult) -> str:
    if not after.is_answered:
        return ""
    if before is None or not before.is_answered:
        return "new"
    changes = {(new > old) - (new < old) for old, new in zip(_answer_scores(before), _answer_scores(after))}
    if {1, -1} <= changes:
        return "mixed"
    return "better" if 1 in changes else "worse" if -1 in changes else "same"


def previous_finished_run(*, run: EvaluationRun) -> EvaluationRun | None:
    return (
        run.evaluation_set.runs.filter(status=EvaluationRun.Status.DONE, created_at__lt=run.created_at)
        .exclude(pk=run.pk)
        .order_by("-created_at", "-pk")
        .first()
    )


def run_comparison(*, run: EvaluationRun) -> RunComparison:
    """Each question of the run against the previous finished run of the set (matched by its text): better, worse or
    the same by the rank of its first relevant passage in hybrid search, and by its answer's scores where both runs
    answered it; and the change of every summary score."""
    previous = previous_finished_run(run=run)
    comparison = RunComparison(previous=previous)
    before = {result.question_text: result for result in previous.results.all()} if previous else {}
    for result in run.results.all():
        earlier = before.get(result.question_text)
        comparison.changes.append(
            QuestionChange(
                question=result.question_text,
                unanswerable=result.unanswerable,
                before=earlier,
                after=result,
                verdict=_verdict(earlier, result),
                answer_verdict=_answer_verdict(earlier, result),
            )
        )
    if previous is not None and run.status == EvaluationRun.Status.DONE:
        for part in (*MODES, "answers"):
            now, then = run.summary.get(part) or {}, previous.summary.get(part) or {}
            comparison.deltas[part] = {
                name: round(value - then[name], 4)
                for name, value in now.items()
                if value is not None and then.get(name) is not None  # an answer score is None with nothing to count
            }
    return comparison
