"""Evaluation sets and runs: every write checks the acting user and records its audit event in the same transaction.

A run asks the live search each question in each retrieval mode as its owner, so it measures what that user may read;
a passage is relevant when it comes from an expected document and holds the expected span (evaluation.matching).
With answers on, it also asks each question as the ask page does (kb.chat's answer_stream, as the owner, the answer
cut to KB_EVALUATION_ANSWER_MAX_TOKENS) and scores the answer's citations, key facts and refusal (evaluation.answers).
"""

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from evaluation.answers import AnswerScore, abstains, answer_summary, fact_stated
from evaluation.matching import holds_expected
from evaluation.metrics import QuestionScore, abstention_summary, question_score, retrieval_summary
from evaluation.sets import EvalQuestion, ExpectedSpan, SetFormatError, read_csv, read_jsonl
from inference.engine import ChatBackend
from kb.accounts.models import Department, User
from kb.accounts.selectors import department_is_administered_by
from kb.audit.models import AuditEvent
from kb.audit.services import audit_record
from kb.chat.generation import AnsweringModel, answer_backend_of_this_loop, answering_model
from kb.chat.services import (
    MAX_QUESTION_CHARS,
    AnswerEvent,
    answer_stream,
    passages_cited,
    question_claim,
    question_create,
)
from kb.documents.jobs import job_enqueue_on_commit
from kb.documents.selectors import collections_readable_by
from kb.evaluation.jobs import RUN_EVALUATION
from kb.evaluation.models import MODES, EvaluationQuestion, EvaluationResult, EvaluationRun, EvaluationSet
from kb.evaluation.selectors import configuration_snapshot, document_names_of_hits, eval_question_of
from kb.platform.actors import system_actor
from kb.search.selectors import PassageHit, close_enough_to_answer, passages_search_with_filter_for_user

logger = logging.getLogger(__name__)

K = 10  # passages asked for per question and mode: Recall@10, MRR@10 and nDCG@10 need ten
PROGRESS_EVERY = 5  # questions between two saves of a run's progress (and heartbeat); every one when answering
ANSWER_CHANNEL = "evaluation"  # the audit trail's channel of a run's answers (the ask page's is "web")
# A question that finds every model busy (the serving queue's own wait is KB_INFERENCE_QUEUE_TIMEOUT) is asked again
# after a pause, at most this many times in all; then its answer is recorded as failed and left out of the scores.
ANSWER_ATTEMPTS = 3
BUSY_PAUSE_SECONDS = 5.0
# Thresholds of "not in the sources" whose false refusal and false answer rates each run reports, to choose one by.
ABSTENTION_THRESHOLDS = tuple(round(0.1 + 0.05 * step, 2) for step in range(15))


def require_set_manager(*, user: User, department: Department) -> None:
    if not department_is_administered_by(user=user, department=department):
        raise PermissionDenied(f"Only the admins of {department} can change or run its evaluation sets.")


# --- Sets and questions -------------------------------------------------------------------------------------------


@transaction.atomic
def evaluation_set_create(
    *, acting_user: User, name: str, department: Department, auto_run: bool = True
) -> EvaluationSet:
    require_set_manager(user=acting_user, department=department)
    evaluation_set = EvaluationSet(name=name.strip(), department=department, auto_run=auto_run, created_by=acting_user)
    evaluation_set.full_clean()
    evaluation_set.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.EVALUATION_SET_CREATED,
        subject=evaluation_set,
        after={"name": evaluation_set.name, "department": department.name, "auto_run": auto_run},
    )
    return evaluation_set


def _fields_of(question: EvalQuestion) -> dict:
    return {
        "expected": [{"document": e.document, "span": e.span} for e in question.expected],
        "facts": list(question.facts),
        "unanswerable": question.unanswerable,
    }


def _refuse_longer_than_asked(question: EvalQuestion, *, where: str = "") -> None:
    """A set's question is one an employee could ask: no longer than the ask flow takes."""
    if len(question.question.strip()) > MAX_QUESTION_CHARS:
        raise ValidationError(
            f"{where}{question.question[:60]!r}… is longer than the {MAX_QUESTION_CHARS:,} characters a question may"
            " have"
        )


def _validated(*, text: str, expected: list[dict], facts: list[str], unanswerable: bool) -> EvalQuestion:
    try:
        validated = EvalQuestion(
            question=text.strip(),
            expected=tuple(
                ExpectedSpan(document=e["document"].strip(), span=e["span"].strip())
                for e in expected
                if e.get("span", "").strip()
            ),
            facts=tuple(fact.strip() for fact in facts if fact.strip()),
            unanswerable=unanswerable,
        )
    except SetFormatError as error:
        raise ValidationError(str(error)) from None
    _refuse_longer_than_asked(validated)
    return validated


@transaction.atomic
def evaluation_question_add(
    *,
    acting_user: User,
    evaluation_set: EvaluationSet,
    text: str,
    expected: list[dict],
    facts: list[str] = (),
    unanswerable: bool = False,
) -> EvaluationQuestion:
    require_set_manager(user=acting_user, department=evaluation_set.department)
    validated = _validated(text=text, expected=list(expected), facts=list(facts), unanswerable=unanswerable)
    if any(not e.document for e in validated.expected):
        raise ValidationError("Name the document each expected passage comes from.")
    question = EvaluationQuestion(evaluation_set=evaluation_set, text=validated.question, **_fields_of(validated))
    question.full_clean()
    question.save()
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.EVALUATION_QUESTION_ADDED,
        subject=question,
        after={"set": evaluation_set.name, "text": question.text, "expected": question.expected},
    )
    return question


@transaction.atomic
def evaluation_question_delete(*, acting_user: User, question: EvaluationQuestion) -> None:
    require_set_manager(user=acting_user, department=question.evaluation_set.department)
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.EVALUATION_QUESTION_DELETED,
        subject=question,
        before={"set": question.evaluation_set.name, "text": question.text, "expected": question.expected},
    )
    question.delete()


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int
    removed: int


def questions_of_file(*, filename: str, data: bytes) -> list[EvalQuestion]:
    """The questions of a CSV or JSON Lines file; a ValidationError naming the line for anything that is not one."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(f"{filename}: not UTF-8 text") from None
    lowered = filename.lower()
    if lowered.endswith(".csv"):
        reader = read_csv
    elif lowered.endswith((".jsonl", ".json", ".ndjson")):
        reader = read_jsonl
    else:
        raise ValidationError(f"{filename}: an evaluation set is a .csv or .jsonl file")
    try:
        questions = reader(text)
    except SetFormatError as error:
        raise ValidationError(f"{filename}: {error}") from None
    if not questions:
        raise ValidationError(f"{filename}: no questions")
    seen: set[str] = set()
    for question in questions:
        _refuse_unstorable(filename, question)
        _refuse_longer_than_asked(question, where=f"{filename}: ")
        if question.question.strip() in seen:
            raise ValidationError(f"{filename}: the question {question.question!r} appears twice")
        seen.add(question.question.strip())
    return questions


def _refuse_unstorable(filename: str, question: EvalQuestion) -> None:
    """PostgreSQL text holds neither a NUL nor a lone surrogate (which a JSON escape can make): named, not a 500."""
    texts = [question.question, question.notes, *question.facts]
    texts += [text for expected in question.expected for text in (expected.document, expected.span)]
    for text in texts:
        if "\x00" in text:
            raise ValidationError(f"{filename}: {question.question[:60]!r} holds a NUL character, which cannot be kept")
        try:
            text.encode()
        except UnicodeEncodeError:
            raise ValidationError(
                f"{filename}: {question.question[:60]!r} holds an escape that is no character (a lone surrogate)"
            ) from None


@transaction.atomic
def evaluation_set_import(
    *, acting_user: User, evaluation_set: EvaluationSet, filename: str, data: bytes, replace: bool = False
) -> ImportResult:
    """Add a file's questions to the set; one already there (same text) takes the file's spans and facts. With
    `replace`, the set's other questions go: the file becomes the set. A bad file changes nothing."""
    require_set_manager(user=acting_user, department=evaluation_set.department)
    questions = questions_of_file(filename=filename, data=data)
    existing = {question.text: question for question in evaluation_set.questions.select_for_update()}
    added = updated = 0
    for question in questions:
        text = question.question.strip()
        fields = _fields_of(question)
        current = existing.get(text)
        if current is None:
            EvaluationQuestion.objects.create(evaluation_set=evaluation_set, text=text, **fields)
            added += 1
        elif any(getattr(current, name) != value for name, value in fields.items()):
            EvaluationQuestion.objects.filter(pk=current.pk).update(**fields)
            updated += 1
    removed = 0
    if replace:
        removed, _ = (
            evaluation_set.questions.exclude(text__in=[q.question.strip() for q in questions])
            .filter(pk__in=[q.pk for q in existing.values()])
            .delete()
        )
    result = ImportResult(added=added, updated=updated, removed=removed)
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.EVALUATION_SET_IMPORTED,
        subject=evaluation_set,
        after={"file": filename, "added": added, "updated": updated, "removed": removed},
    )
    return result


# --- Runs ---------------------------------------------------------------------------------------------------------


@transaction.atomic
def evaluation_run_start(
    *,
    acting_user: User,
    evaluation_set: EvaluationSet,
    owner: User | None = None,
    trigger: EvaluationRun.Trigger = EvaluationRun.Trigger.MANUAL,
    answers: bool = False,
    enqueue: bool = True,
) -> EvaluationRun:
    """A queued run, searched (and with `answers`, asked) as `owner` (the acting user by default); the worker takes it
    once this commits. Without `enqueue` the caller runs it itself (evaluation_run_execute), as `manage.py
    kb_evaluate` does."""
    require_set_manager(user=acting_user, department=evaluation_set.department)
    total = evaluation_set.questions.count()
    if not total:
        raise ValidationError("The set has no questions to run.")
    run = EvaluationRun.objects.create(
        evaluation_set=evaluation_set,
        owner=owner or acting_user,
        trigger=trigger,
        answers=answers,
        questions_total=total,
    )
    audit_record(
        actor=acting_user,
        kind=AuditEvent.Kind.EVALUATION_RUN_QUEUED,
        subject=run,
        after={
            "set": evaluation_set.name,
            "owner": run.owner.username,
            "trigger": trigger,
            "answers": answers,
            "questions": total,
        },
    )
    if enqueue:
        job_enqueue_on_commit(RUN_EVALUATION, run.pk)
    return run


def evaluation_runs_start_automatic(
    *, trigger: EvaluationRun.Trigger, collection_id: int | None = None
) -> list[EvaluationRun]:
    """A run of each set that runs by itself, as its creator: after a re-ingestion only the sets whose creator reads
    the collection. A set that already has a queued run gets no second one (many documents ingested, one run)."""
    started = []
    # Locked, so that two workers publishing at once queue one run of a set, not two.
    for evaluation_set in EvaluationSet.objects.select_for_update().filter(auto_run=True).select_related("created_by"):
        if evaluation_set.runs.filter(status=EvaluationRun.Status.QUEUED).exists():
            continue
        if not evaluation_set.questions.exists():
            continue
        if (
            collection_id is not None
            and not collections_readable_by(user=evaluation_set.created_by).filter(pk=collection_id).exists()
        ):
            continue
        started.append(
            evaluation_run_start(
                acting_user=system_actor(),
                evaluation_set=evaluation_set,
                owner=evaluation_set.created_by,
                trigger=trigger,
                answers=settings.KB_EVALUATION_AUTO_ANSWERS,
            )
        )
    return started


def evaluation_run_execute(
    *, run_id: int, progress: Callable[[EvaluationRun], None] | None = None
) -> EvaluationRun | None:
    """Ask every question of the set in each mode, score, and record; progress is saved as it goes, a failure is
    recorded with its reason. A run that is not queued any more (already taken, finished) is left as it is."""
    now = timezone.now()
    taken = EvaluationRun.objects.filter(pk=run_id, status=EvaluationRun.Status.QUEUED).update(
        status=EvaluationRun.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    run = EvaluationRun.objects.select_related("evaluation_set", "owner").filter(pk=run_id).first()
    if not taken or run is None:
        logger.info("evaluation run %s is not queued; left as it is", run_id)
        return run
    try:
        # One event loop for the whole run: the answers' client keeps its connections to the serving process in it.
        async_to_sync(_run_questions)(run, progress=progress)
    except Exception as error:
        evaluation_run_mark_failed(run_id=run.pk, reason=f"{type(error).__name__}: {error}")
        raise
    run.refresh_from_db()
    return run


async def _run_questions(run: EvaluationRun, *, progress: Callable[[EvaluationRun], None] | None) -> None:
    if not run.answers:
        await _questions_run(run, progress=progress, backend=None)
        return
    async with answer_backend_of_this_loop() as backend:
        await _questions_run(run, progress=progress, backend=backend)


async def _questions_run(
    run: EvaluationRun, *, progress: Callable[[EvaluationRun], None] | None, backend: ChatBackend | None
) -> None:
    """Each question searched (and with a `backend`, answered) in turn; the database is reached through
    sync_to_async, which under evaluation_run_execute's async_to_sync runs in the calling thread, on its connection."""
    threshold = settings.KB_ABSTAIN_BELOW_SIMILARITY
    # No model ready to answer: the run fails with the reason.
    model = await asyncio.to_thread(answering_model, backend) if backend is not None else None
    questions = await sync_to_async(_run_configured)(run, model=model)
    results, unsaved = [], []
    answered_by: set[str] = set()
    every = 1 if run.answers else PROGRESS_EVERY
    for done, question in enumerate(questions, start=1):
        result = await sync_to_async(_question_result)(run, question, threshold=threshold)
        if backend is not None:
            answered_by.update(await _answer_scored(run, question, result, backend=backend))
        results.append(result)
        unsaved.append(result)
        if done % every == 0 or done == len(questions):
            await sync_to_async(_progress_saved)(run, unsaved, done=done)
            unsaved.clear()
            if progress is not None:
                await sync_to_async(progress)(run)
    if model is not None:
        run.configuration["llm"]["answered_by"] = sorted(answered_by)
    summary = run_summary(results, threshold=threshold, answers=run.answers)
    await sync_to_async(_run_finish)(run_id=run.pk, summary=summary, configuration=run.configuration)


def _run_configured(run: EvaluationRun, *, model: AnsweringModel | None) -> list[EvaluationQuestion]:
    run.configuration = configuration_snapshot(user=run.owner, k=K, modes=MODES, llm=_llm_configuration(model))
    questions = list(run.evaluation_set.questions.all())
    run.questions_total = len(questions)
    run.save(update_fields=["configuration", "questions_total"])
    return questions


def _llm_configuration(model: AnsweringModel | None) -> dict | None:
    """The answering model the run starts with, and the sampling its answers get."""
    if model is None:
        return None
    params = model.generation_params(max_tokens=settings.KB_EVALUATION_ANSWER_MAX_TOKENS)
    return {
        "model": model.name,
        "preset": model.preset.name if model.preset else None,
        "served_by": settings.KB_INFERENCE_URL or "this process (llama.cpp)",
        "sampling": dataclasses.asdict(params),
        "max_tokens": params.max_tokens,
        "thinking": False,
    }


def _progress_saved(run: EvaluationRun, unsaved: list[EvaluationResult], *, done: int) -> None:
    EvaluationResult.objects.bulk_create(unsaved)
    EvaluationRun.objects.filter(pk=run.pk).update(questions_done=done, heartbeat_at=timezone.now())
    run.questions_done = done


def _passage_text(hit: PassageHit) -> str:
    return f"{hit.heading}\n{hit.text}"


def _relevant(hit: PassageHit, document_name: str, expected: tuple[ExpectedSpan, ...]) -> bool:
    return holds_expected(document=document_name, passage=_passage_text(hit), expected=expected)


def _question_result(run: EvaluationRun, question: EvaluationQuestion, *, threshold: float) -> EvaluationResult:
    modes: dict[str, dict] = {}
    best_similarity = None
    hybrid_hits: list[PassageHit] = []
    expected = eval_question_of(question).expected
    for mode in MODES:
        search = passages_search_with_filter_for_user(user=run.owner, query_text=question.text, k=K, mode=mode)
        names = document_names_of_hits(hits=search.hits)
        outcome = {
            "chunk_ids": [hit.chunk_id for hit in search.hits],
            "scores": [round(hit.score, 4) for hit in search.hits],
            "rank": None,
            "ndcg": 0.0,
        }
        if not question.unanswerable:
            score = question_score(
                [_relevant(hit, names.get(hit.document_id, ""), expected) for hit in search.hits],
                expected_count=len(expected),
            )
            outcome.update(rank=score.first_relevant_rank, ndcg=round(score.ndcg_at_10, 4))
        modes[mode] = outcome
        if mode == "hybrid":
            best_similarity, hybrid_hits = search.best_similarity, search.hits
    return EvaluationResult(
        run=run,
        question=question,
        question_text=question.text,
        unanswerable=question.unanswerable,
        modes=modes,
        best_similarity=best_similarity,
        abstained=abstains_by_similarity(found=bool(hybrid_hits), best_similarity=best_similarity, threshold=threshold),
    )


async def _asked(run: EvaluationRun, question: EvaluationQuestion, *, backend: ChatBackend) -> AnswerEvent:
    """The ask page's answer to the question, asked as the run's owner in a conversation of its own that they never
    see listed; asked again after a pause while every model is busy."""
    asked = await sync_to_async(question_create)(acting_user=run.owner, text=question.text, unlisted=True)
    for attempt in range(ANSWER_ATTEMPTS):
        if attempt:
            await asyncio.sleep(BUSY_PAUSE_SECONDS)
        await sync_to_async(question_claim)(question_id=asked.pk)
        events = answer_stream(
            user=run.owner,
            question=asked,
            max_tokens=settings.KB_EVALUATION_ANSWER_MAX_TOKENS,
            channel=ANSWER_CHANNEL,
            backend=backend,
        )
        done = [event async for event in events if event.kind == "done"][-1]
        if "busy" not in done.record.flags:
            break
    return done


async def _answer_scored(
    run: EvaluationRun, question: EvaluationQuestion, result: EvaluationResult, *, backend: ChatBackend
) -> set[str]:
    """The question's answer and its scores, into `result`; the models that answered it."""
    try:
        done = await _asked(run, question, backend=backend)
    except ValidationError as error:  # a question the ask page would not take (too long)
        result.answer_error = " ".join(error.messages)
        return set()
    record = done.record
    result.answer = done.text
    if record.error:
        result.answer_error = record.error
        return set()
    expected = eval_question_of(question).expected
    names = await sync_to_async(document_names_of_hits)(hits=[passage.hit for passage in done.passages])
    result.answer_citations = []
    # The ask flow's own reading of the answer's [n], as its page links them.
    for passage in passages_cited(passages=done.passages, record=record):
        document = names.get(passage.hit.document_id, "")
        result.answer_citations.append(
            {
                "number": passage.number,
                "chunk_id": passage.hit.chunk_id,
                "document": document,
                "expected": _relevant(passage.hit, document, expected),
            }
        )
    if not question.unanswerable:
        result.answer_cites_expected = any(citation["expected"] for citation in result.answer_citations)
    result.answer_facts = [{"fact": fact, "stated": fact_stated(done.text, fact)} for fact in question.facts]
    # No passage to give the model (nothing readable, nothing close enough): the ask flow's own "not in the sources".
    result.answer_abstained = not done.passages or abstains(done.text)
    return {record.model} if record.model else set()


def abstains_by_similarity(*, found: bool, best_similarity: float | None, threshold: float) -> bool:
    """What the ask page answers with "not in the sources": nothing found, or nothing close enough (kb.chat)."""
    return not found or not close_enough_to_answer(best_similarity, threshold=threshold)


def run_summary(results: list[EvaluationResult], *, threshold: float, answers: bool) -> dict:
    answerable = [r for r in results if not r.unanswerable]
    unanswerable = [r for r in results if r.unanswerable]
    summary: dict = {
        mode: retrieval_summary(
            [
                QuestionScore(first_relevant_rank=r.modes[mode]["rank"], ndcg_at_10=r.modes[mode]["ndcg"])
                for r in answerable
            ]
        )
        for mode in MODES
    }

    def abstention_at(value: float) -> dict:
        def refused(result: EvaluationResult) -> bool:
            found = bool(result.modes["hybrid"]["chunk_ids"])
            return abstains_by_similarity(found=found, best_similarity=result.best_similarity, threshold=value)

        return {
            "threshold": value,
            **abstention_summary(
                answerable_refused=sum(refused(r) for r in answerable),
                answerable=len(answerable),
                unanswerable_answered=sum(not refused(r) for r in unanswerable),
                unanswerable=len(unanswerable),
            ),
        }

    summary["abstention"] = abstention_at(threshold)
    summary["abstention_by_threshold"] = [abstention_at(value) for value in ABSTENTION_THRESHOLDS]
    summary["questions"] = {"answerable": len(answerable), "unanswerable": len(unanswerable)}
    if answers:
        summary["answers"] = {
            **answer_summary([answer_score(r) for r in results if r.is_answered]),
            "failed": sum(1 for r in results if not r.is_answered),
        }
    return summary


def answer_score(result: EvaluationResult) -> AnswerScore:
    """An answered result's scores, as stored."""
    return AnswerScore(
        unanswerable=result.unanswerable,
        citations=tuple(citation["expected"] for citation in result.answer_citations),
        facts=tuple(fact["stated"] for fact in result.answer_facts),
        abstained=bool(result.answer_abstained),
    )


@transaction.atomic
def _run_finish(*, run_id: int, summary: dict, configuration: dict) -> None:
    run = EvaluationRun.objects.select_for_update().get(pk=run_id)
    run.status = EvaluationRun.Status.DONE
    run.summary = summary
    run.configuration = configuration
    run.finished_at = run.heartbeat_at = timezone.now()
    run.save(update_fields=["status", "summary", "configuration", "finished_at", "heartbeat_at"])
    audit_record(
        actor=system_actor(),
        kind=AuditEvent.Kind.EVALUATION_RUN_FINISHED,
        subject=run,
        after={
            "hybrid": summary.get("hybrid", {}),
            "answers": summary.get("answers"),
            "questions": summary.get("questions"),
        },
    )


@transaction.atomic
def evaluation_run_mark_failed(*, run_id: int, reason: str) -> None:
    run = EvaluationRun.objects.select_for_update().get(pk=run_id)
    before = {"status": run.status}
    run.status = EvaluationRun.Status.FAILED
    run.error = reason
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    logger.warning("evaluation run %s failed: %s", run_id, reason)
    audit_record(
        actor=system_actor(),
        kind=AuditEvent.Kind.EVALUATION_RUN_FAILED,
        subject=run,
        before=before,
        after={"reason": reason},
    )


def evaluation_runs_fail_stalled() -> list[int]:
    """Close as failed the runs whose worker stopped reporting (killed, restarted): a run is never left running."""
    cutoff = timezone.now() - timedelta(seconds=settings.KB_INGEST_STALL_SECONDS)
    stalled = list(
        EvaluationRun.objects.filter(status=EvaluationRun.Status.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for run_id in stalled:
        evaluation_run_mark_failed(run_id=run_id, reason="the worker running it stopped reporting")
    return stalled
