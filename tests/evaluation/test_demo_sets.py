"""The demo ships its evaluation sets: each demo department gets the python-docs questions about its own pages."""

import io

import pytest
from django.core.management import call_command

from kb.evaluation.models import EvaluationSet

pytestmark = pytest.mark.django_db


def test_the_demo_gets_one_set_per_department_with_the_questions_its_pages_answer(python_docs):
    call_command("kb_seed_demo", stdout=io.StringIO())

    call_command("kb_seed_demo_evaluation", stdout=io.StringIO())
    call_command("kb_seed_demo_evaluation", stdout=io.StringIO())  # idempotent

    sets = {evaluation_set.department.name: evaluation_set for evaluation_set in EvaluationSet.objects.all()}
    assert set(sets) == {"Engineering", "Operations"}
    for department, pages in (
        ("Engineering", {"general.html", "design.html"}),
        ("Operations", {"logging.html", "sorting.html"}),
    ):
        questions = list(sets[department].questions.all())
        answerable = [question for question in questions if not question.unanswerable]
        assert len(answerable) >= 10 and len(questions) - len(answerable) >= 6
        assert all({expected["document"] for expected in question.expected} <= pages for question in answerable)
        assert sets[department].auto_run and sets[department].created_by.username.endswith("-admin")
