"""The demo's evaluation sets: the shipped python-docs set, split between the demo departments that hold its pages."""

from django.core.management.base import BaseCommand

from evaluation.corpora import SETS_DIR
from evaluation.sets import read_jsonl, write_jsonl
from kb.accounts.models import Department, User
from kb.documents.management.commands.kb_seed_demo import DEMO
from kb.evaluation.models import EvaluationSet
from kb.evaluation.services import evaluation_set_create, evaluation_set_import

DEMO_SET = SETS_DIR / "python-docs" / "questions.jsonl"


class Command(BaseCommand):
    help = (
        "Create the demo's evaluation sets if they do not exist: each demo department gets the python-docs questions "
        "about its own pages, and all the unanswerable ones; they run on their own once the pages are ingested."
    )

    def handle(self, *args, **options):
        questions = read_jsonl(DEMO_SET.read_text())
        for department_name, spec in DEMO.items():
            name = f"{spec['collection']} questions"
            department = Department.objects.filter(name=department_name).first()
            admin = User.objects.filter(username=spec["admin"]).first()
            if department is None or admin is None or EvaluationSet.objects.filter(name=name).exists():
                continue
            pages = {page.rsplit("/", 1)[-1] for page in spec["pages"]}
            own = [
                question
                for question in questions
                if question.unanswerable or {expected.document for expected in question.expected} <= pages
            ]
            evaluation_set = evaluation_set_create(acting_user=admin, name=name, department=department)
            evaluation_set_import(
                acting_user=admin,
                evaluation_set=evaluation_set,
                filename="questions.jsonl",
                data=write_jsonl(own).encode(),
            )
            self.stdout.write(f"    evaluation set {name!r}: {len(own)} questions ({department_name})")
