import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from kb.accounts.models import DepartmentAncestry, Membership, User
from kb.accounts.selectors import departments_administered_by, departments_of_user
from kb.accounts.services import (
    department_create,
    department_move,
    membership_create,
    membership_role_change,
    user_role_change,
)
from kb.audit.models import AuditEvent
from kb.documents.models import Collection
from kb.documents.services import grant_create
from kb.platform.actors import system_actor
from kb.search.selectors import passages_search_for_user
from tests.factories import ingested_document, make_collection, make_department, make_superuser, make_user

pytestmark = pytest.mark.django_db

QUESTION = "payroll cut-off date"


@pytest.fixture
def finance_tree():
    finance = make_department("Finance")
    payroll = make_department("Payroll", parent=finance)
    salaries = make_department("Salaries", parent=payroll)
    return finance, payroll, salaries


def _finance_handbook(finance):
    collection = make_collection(owner=finance)
    ingested_document(
        collection=collection,
        name="handbook.md",
        content=b"# Payroll\nThe payroll cut-off date is the 20th of each month.",
    )
    return collection


def _sees(user) -> bool:
    return bool(passages_search_for_user(user=user, query_text=QUESTION, k=3))


def test_members_of_a_sub_department_read_what_the_departments_above_may_read(finance_tree):
    finance, payroll, salaries = finance_tree
    _finance_handbook(finance)
    deep_member = make_user(department=salaries)
    outsider = make_user(department=make_department("Sales"))

    assert set(departments_of_user(user=deep_member)) == {finance, payroll, salaries}
    assert _sees(deep_member)
    assert not _sees(outsider)


def test_members_of_a_parent_department_do_not_read_a_sub_departments_collections(finance_tree):
    finance, payroll, _ = finance_tree
    payroll_only = make_collection(owner=payroll)
    ingested_document(
        collection=payroll_only,
        name="salaries.md",
        content=b"# Salaries\nThe payroll cut-off date for bonuses is the 15th.",
    )
    finance_member = make_user(department=finance)

    assert not _sees(finance_member)


def test_a_grant_to_a_department_reaches_its_sub_departments(finance_tree):
    finance, payroll, _ = finance_tree
    legal = make_department("Legal")
    collection = make_collection(owner=legal)
    ingested_document(
        collection=collection,
        name="contracts.md",
        content=b"# Contracts\nThe payroll cut-off date is set in each employment contract.",
    )
    payroll_member = make_user(department=payroll)
    assert not _sees(payroll_member)

    grant_create(acting_user=make_user(department=legal, admin=True), collection=collection, department=finance)

    assert _sees(payroll_member)


def test_a_department_admin_administers_the_departments_below_and_not_above(finance_tree):
    finance, payroll, salaries = finance_tree
    payroll_admin = make_user(department=payroll, admin=True)

    assert set(departments_administered_by(user=payroll_admin)) == {payroll, salaries}
    membership_create(acting_user=payroll_admin, user=make_user(), department=salaries)
    with pytest.raises(PermissionDenied):
        membership_create(acting_user=payroll_admin, user=make_user(), department=finance)


def test_moving_a_department_moves_access_on_the_next_query(finance_tree):
    finance, payroll, salaries = finance_tree
    _finance_handbook(finance)
    operations = make_department("Operations")
    salaries_member = make_user(department=salaries)
    assert _sees(salaries_member)

    department_move(acting_user=system_actor(), department=payroll, parent=operations)

    assert not _sees(salaries_member)
    assert set(departments_of_user(user=salaries_member)) == {operations, payroll, salaries}
    assert DepartmentAncestry.objects.get(department=salaries, ancestor=operations).depth == 2
    moved = AuditEvent.objects.get(kind=AuditEvent.Kind.DEPARTMENT_MOVED)
    assert moved.before == {"parent": finance.pk} and moved.after == {"parent": operations.pk}


def test_a_department_cannot_move_under_its_own_sub_department(finance_tree):
    finance, _, salaries = finance_tree

    with pytest.raises(ValidationError, match="under itself"):
        department_move(acting_user=system_actor(), department=finance, parent=salaries)
    with pytest.raises(ValidationError, match="under itself"):
        department_move(acting_user=system_actor(), department=finance, parent=finance)
    assert DepartmentAncestry.objects.filter(ancestor=finance).count() == 3


def test_moving_to_the_top_cuts_every_inherited_department(finance_tree):
    finance, payroll, salaries = finance_tree
    department_move(acting_user=system_actor(), department=payroll, parent=None)

    assert set(DepartmentAncestry.objects.filter(department=salaries).values_list("ancestor", flat=True)) == {
        payroll.pk,
        salaries.pk,
    }


def test_only_superusers_change_departments_and_user_roles(finance_tree):
    finance, _, _ = finance_tree
    finance_admin = make_user(department=finance, admin=True)
    employee = make_user()

    with pytest.raises(PermissionDenied):
        department_create(acting_user=finance_admin, name="Shadow IT", parent=finance)
    with pytest.raises(PermissionDenied):
        user_role_change(acting_user=finance_admin, user=employee, role=User.Role.AUDITOR)


def test_role_changes_are_validated_and_audited_with_before_and_after(finance_tree):
    finance, _, _ = finance_tree
    root = make_superuser()
    member = make_user(department=finance)
    membership = member.memberships.get()

    membership_role_change(acting_user=root, membership=membership, role=Membership.Role.ADMIN)
    user_role_change(acting_user=root, user=member, role=User.Role.AUDITOR)
    with pytest.raises(ValidationError):
        membership_role_change(acting_user=root, membership=membership, role="owner")

    membership.refresh_from_db()
    member.refresh_from_db()
    assert membership.role == Membership.Role.ADMIN and member.role == User.Role.AUDITOR
    assert AuditEvent.objects.get(kind=AuditEvent.Kind.MEMBERSHIP_ROLE_CHANGED).before == {"role": "member"}
    assert AuditEvent.objects.get(kind=AuditEvent.Kind.USER_ROLE_CHANGED).after == {"role": "auditor"}


def test_an_auditor_reads_no_company_wide_documents_without_a_membership_or_grant():
    engineering = make_department("Engineering")
    handbook = make_collection(owner=engineering, visibility=Collection.Visibility.COMPANY)
    ingested_document(
        collection=handbook,
        name="payroll.md",
        content=b"# Payroll\nThe payroll cut-off date is the 20th of each month.",
    )
    auditor = make_user(username="auditor")
    user_role_change(acting_user=system_actor(), user=auditor, role=User.Role.AUDITOR)
    employee = make_user()

    assert _sees(employee) and not _sees(auditor)

    grant_create(acting_user=make_user(department=engineering, admin=True), collection=handbook, user=auditor)

    assert _sees(auditor)
