import pytest

from kb.accounts.models import Department, User
from kb.documents.models import Collection
from kb.evaluation.models import EvaluationSet
from kb.evaluation.services import evaluation_question_add, evaluation_set_create
from tests.factories import ingested_document, make_collection, make_department, make_user

LEAVE = (
    b"# Leave\nAnnual leave is 25 days a year. Carrying over up to five days needs your manager's approval.\n\n"
    b"# Expenses\nTravel expenses are reimbursed within 30 days when the receipt is attached to the claim.\n"
)
INDENTATION = "Why does Python use indentation for grouping of statements?"
INDENTATION_SPAN = "Guido van Rossum believes that using indentation for grouping is extremely elegant"


class Org:
    department: Department
    admin: User
    collection: Collection


@pytest.fixture
def hr() -> Org:
    """Human Resources with its admin and a collection holding one small ingested policy (leave.md)."""
    org = Org()
    org.department = make_department("Human Resources")
    org.admin = make_user(department=org.department, admin=True, username="hr-admin")
    org.collection = make_collection(owner=org.department, name="HR policies")
    ingested_document(collection=org.collection, name="leave.md", content=LEAVE)
    return org


def leave_set(org: Org, *, name: str = "Leave", auto_run: bool = False) -> EvaluationSet:
    """Two answerable questions about leave.md and one that no document answers."""
    evaluation_set = evaluation_set_create(
        acting_user=org.admin, name=name, department=org.department, auto_run=auto_run
    )
    evaluation_question_add(
        acting_user=org.admin,
        evaluation_set=evaluation_set,
        text="How many days of annual leave do I get?",
        expected=[{"document": "leave.md", "span": "Annual leave is 25 days a year"}],
        facts=["25 days"],
    )
    evaluation_question_add(
        acting_user=org.admin,
        evaluation_set=evaluation_set,
        text="When are travel expenses reimbursed?",
        expected=[{"document": "leave.md", "span": "Travel expenses are reimbursed within 30 days"}],
    )
    evaluation_question_add(
        acting_user=org.admin,
        evaluation_set=evaluation_set,
        text="What is on the canteen menu on Friday?",
        expected=[],
        unanswerable=True,
    )
    return evaluation_set
