import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from kb.accounts.services import membership_delete
from kb.audit.models import AuditEvent
from kb.documents.services import grant_create, grant_revoke
from kb.search.selectors import passages_search_for_user
from tests.factories import ingested_document, make_collection, make_department, make_user

pytestmark = pytest.mark.django_db

QUESTION = "expense claims deadline"


@pytest.fixture
def finance():
    department = make_department("Finance")
    collection = make_collection(owner=department)
    ingested_document(
        collection=collection,
        name="expenses.md",
        content=b"# Expenses\nExpense claims must reach finance by the 5th of the next month.",
    )
    return {"department": department, "collection": collection, "admin": make_user(department=department, admin=True)}


def _sees(user) -> bool:
    return bool(passages_search_for_user(user=user, query_text=QUESTION, k=3))


def test_a_department_grant_opens_the_collection_and_revoking_closes_it_on_the_next_query(finance):
    sales = make_department("Sales")
    seller = make_user(department=sales)
    assert not _sees(seller)

    grant = grant_create(acting_user=finance["admin"], collection=finance["collection"], department=sales)
    assert _sees(seller)

    grant_revoke(acting_user=finance["admin"], grant=grant)
    assert not _sees(seller)
    revoked = AuditEvent.objects.get(kind=AuditEvent.Kind.GRANT_REVOKED)
    assert revoked.before["department"] == sales.pk and revoked.before["granted_by"] == finance["admin"].pk


def test_a_user_grant_opens_the_collection_to_that_user_only(finance):
    sales = make_department("Sales")
    chosen, colleague = make_user(department=sales), make_user(department=sales)

    grant_create(acting_user=finance["admin"], collection=finance["collection"], user=chosen)

    assert _sees(chosen) and not _sees(colleague)


def test_leaving_a_department_takes_effect_on_the_next_query(finance):
    member = make_user(department=finance["department"])
    assert _sees(member)

    membership_delete(acting_user=finance["admin"], membership=member.memberships.get())

    assert not _sees(member)


def test_only_the_owning_departments_admins_grant_and_a_grant_names_one_grantee(finance):
    sales = make_department("Sales")
    with pytest.raises(PermissionDenied):
        grant_create(
            acting_user=make_user(department=finance["department"]), collection=finance["collection"], department=sales
        )
    with pytest.raises(ValidationError):
        grant_create(acting_user=finance["admin"], collection=finance["collection"], department=sales, user=make_user())
