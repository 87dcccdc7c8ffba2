"""Run an evaluation set now, in this process, and print its scores; optionally create or refresh it from a file."""

import time
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inference.types import EngineError
from kb.accounts.models import Department, User
from kb.evaluation.models import MODES, EvaluationRun, EvaluationSet
from kb.evaluation.selectors import previous_finished_run
from kb.evaluation.services import (
    evaluation_run_execute,
    evaluation_run_start,
    evaluation_set_create,
    evaluation_set_import,
)
from kb.platform.actors import system_actor

METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")


def summary_table(run: EvaluationRun, previous: EvaluationRun | None = None) -> str:
    """The run's scores by mode, with the change since `previous` where there is one."""
    lines = [f"{'mode':<8} " + " ".join(f"{name:>10}" for name in METRICS)]
    for mode in MODES:
        scores, before = run.summary.get(mode) or {}, (previous.summary.get(mode) or {}) if previous else {}
        cells = []
        for name in METRICS:
            value = scores.get(name)
            cell = "—" if value is None else f"{value:.3f}"
            if value is not None and before.get(name) is not None and value != before[name]:
                cell += f"{value - before[name]:+.2f}"
            cells.append(f"{cell:>10}")
        lines.append(f"{mode:<8} " + " ".join(cells))
    abstention = run.summary.get("abstention") or {}
    lines.append(
        f"not in the sources at similarity < {abstention.get('threshold')}: false refusals "
        f"{abstention.get('false_refusal_rate')} of {abstention.get('answerable')} answerable, false answers "
        f"{abstention.get('false_answer_rate')} of {abstention.get('unanswerable')} unanswerable"
    )
    answers = run.summary.get("answers")
    if answers:
        llm = run.configuration.get("llm") or {}
        lines.append(
            f"answers by {', '.join(llm.get('answered_by') or [llm.get('model', '?')])} "
            f"(at most {llm.get('max_tokens')} tokens): cite an expected passage {answers['citation_accuracy']}, "
            f"citations to expected passages {answers['citation_precision']}, key facts stated "
            f"{answers['key_fact_recall']}, unanswerable refused {answers['abstention']}, answerable refused "
            f"{answers['false_refusal_rate']}; {answers['failed']} failed"
        )
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Run an evaluation set synchronously as a user (by default the set's creator) and print its scores. With "
        "--import FILE (CSV or JSON Lines) the set is created (in --department) or its questions replaced first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--set", required=True, dest="set_name", help="the evaluation set's name")
        parser.add_argument("--user", help="search as this user (default: the set's creator)")
        parser.add_argument("--import", dest="import_file", type=Path, help="a CSV or JSON Lines file of questions")
        parser.add_argument("--department", help="where a set created by --import belongs")
        parser.add_argument(
            "--answers",
            action="store_true",
            help="also answer each question as the ask page does and score the answers (slow on a CPU; answers get "
            "KB_EVALUATION_ANSWER_MAX_TOKENS tokens)",
        )

    def handle(self, *args, set_name, user=None, import_file=None, department=None, answers=False, **options):
        actor = system_actor()
        owner = None
        if user:
            owner = User.objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"no user {user!r}")
        try:
            evaluation_set = EvaluationSet.objects.filter(name=set_name).first()
            if import_file is not None:
                evaluation_set = evaluation_set or self._created(set_name, department, owner)
                result = evaluation_set_import(
                    acting_user=actor,
                    evaluation_set=evaluation_set,
                    filename=import_file.name,
                    data=import_file.read_bytes(),
                    replace=True,
                )
                self.stdout.write(
                    f"{import_file}: {result.added} added, {result.updated} updated, {result.removed} removed"
                )
            if evaluation_set is None:
                raise CommandError(f"no evaluation set {set_name!r} (give --import FILE to create it)")
            run = evaluation_run_start(
                acting_user=actor,
                evaluation_set=evaluation_set,
                owner=owner or evaluation_set.created_by,
                trigger=EvaluationRun.Trigger.COMMAND,
                answers=answers,
                enqueue=False,
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        except OSError as error:
            raise CommandError(str(error)) from error
        doing = "searching and answering" if answers else "searching"
        self.stdout.write(f"run {run.pk}: {run.questions_total} questions, {doing} as {run.owner.username}")
        started = time.perf_counter()
        try:
            run = evaluation_run_execute(
                run_id=run.pk, progress=lambda r: self.stdout.write(f"  {r.questions_done}/{r.questions_total}")
            )
        except EngineError as error:  # no model ready to answer: the run is recorded as failed with this reason
            raise CommandError(f"run {run.pk} failed: {error}") from error
        elapsed = time.perf_counter() - started
        if answers:
            pace = f"{elapsed / max(run.questions_total, 1):.1f} s a question"
        else:
            pace = f"{elapsed * 1000 / max(run.questions_total * len(MODES), 1):.0f} ms a search"
        self.stdout.write(f"{run.questions_total} questions in {elapsed:.1f} s ({pace})")
        self.stdout.write(summary_table(run, previous_finished_run(run=run)))

    def _created(self, name: str, department_name: str | None, owner: User | None) -> EvaluationSet:
        if department_name:
            department = Department.objects.filter(name=department_name).first()
            if department is None:
                raise CommandError(f"no department {department_name!r}")
        else:
            departments = Department.objects.filter(memberships__user=owner) if owner else Department.objects.none()
            if departments.count() != 1:
                raise CommandError("say which department the new set belongs to: --department NAME")
            department = departments.get()
        # Created by the user it runs as, so that its automatic runs search as them too.
        return evaluation_set_create(acting_user=owner or system_actor(), name=name, department=department)
