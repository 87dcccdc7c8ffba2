import pytest
from django.urls import reverse

from kb.accounts.models import Department, Membership, User
from kb.audit.models import AuditEvent
from tests.factories import PASSWORD, make_department, make_superuser, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def superuser(client):
    root = make_superuser()
    client.login(username="root", password=PASSWORD)
    return root


def test_a_superuser_builds_a_nested_department_and_the_page_shows_the_tree(client, superuser):
    finance = make_department("Finance")

    response = client.post(
        reverse("accounts:department-create"), {"name": "Payroll", "parent": finance.pk}, headers=HTMX
    )

    assert response.status_code == 200
    payroll = Department.objects.get(name="Payroll")
    assert payroll.parent == finance
    page = response.content.decode()
    assert 'id="organisation"' in page and "<html" not in page  # the htmx partial only
    assert "Part of Finance" in page
    assert page.index(f'id="department-{finance.pk}"') < page.index(f'id="department-{payroll.pk}"')


def test_moving_a_department_under_its_own_child_is_refused_with_the_reason(client, superuser):
    finance = make_department("Finance")
    payroll = make_department("Payroll", parent=finance)

    response = client.post(reverse("accounts:department-move", args=[finance.pk]), {"parent": payroll.pk}, headers=HTMX)

    assert response.status_code == 400
    assert "cannot move under itself" in response.content.decode()
    finance.refresh_from_db()
    assert finance.parent is None


def test_a_department_admin_adds_a_member_changes_the_role_and_removes_them(client):
    finance = make_department("Finance")
    admin = make_user(department=finance, admin=True)
    newcomer = make_user(username="newcomer")
    client.login(username=admin.username, password=PASSWORD)

    client.post(
        reverse("accounts:membership-create", args=[finance.pk]),
        {"username": "newcomer", "role": "member"},
        headers=HTMX,
    )
    membership = Membership.objects.get(user=newcomer, department=finance)
    client.post(reverse("accounts:membership-role", args=[membership.pk]), {"role": "admin"}, headers=HTMX)
    membership.refresh_from_db()
    assert membership.role == Membership.Role.ADMIN

    response = client.post(reverse("accounts:membership-delete", args=[membership.pk]), headers=HTMX)

    assert response.status_code == 200
    assert not Membership.objects.filter(pk=membership.pk).exists()
    kinds = list(AuditEvent.objects.filter(actor=admin).order_by("id").values_list("kind", flat=True))
    assert kinds == ["membership.created", "membership.role_changed", "membership.deleted"]


def test_an_unknown_username_or_a_duplicate_membership_shows_a_clear_error(client):
    finance = make_department("Finance")
    admin = make_user(department=finance, admin=True)
    client.login(username=admin.username, password=PASSWORD)

    unknown = client.post(
        reverse("accounts:membership-create", args=[finance.pk]), {"username": "nobody"}, headers=HTMX
    )
    duplicate = client.post(
        reverse("accounts:membership-create", args=[finance.pk]), {"username": admin.username}, headers=HTMX
    )

    assert unknown.status_code == 400 and "No user has that username." in unknown.content.decode()
    assert duplicate.status_code == 400 and "already exists" in duplicate.content.decode()


def test_an_admin_cannot_touch_another_departments_memberships(client):
    finance, sales = make_department("Finance"), make_department("Sales")
    finance_admin = make_user(department=finance, admin=True)
    seller = make_user(department=sales)
    client.login(username=finance_admin.username, password=PASSWORD)

    page = client.get(reverse("accounts:organisation")).content.decode()
    removal = client.post(reverse("accounts:membership-delete", args=[seller.memberships.get().pk]), headers=HTMX)
    joining = client.post(reverse("accounts:membership-create", args=[sales.pk]), {"username": "x"}, headers=HTMX)

    assert "Finance" in page and f'id="department-{sales.pk}"' not in page
    assert removal.status_code == 404 and joining.status_code == 404
    assert seller.memberships.exists()


def test_employees_get_no_organisation_page_and_no_admin_links(client):
    employee = make_user(department=make_department("Sales"))
    client.login(username=employee.username, password=PASSWORD)

    assert client.get(reverse("accounts:organisation")).status_code == 403
    assert "Organisation" not in client.get(reverse("search:page")).content.decode()


def test_a_superuser_creates_an_auditor_and_changes_roles(client, superuser):
    response = client.post(
        reverse("accounts:user-create"),
        {"username": "carol", "password": "long-enough-secret", "role": "auditor"},
        headers=HTMX,
    )
    assert response.status_code == 200
    carol = User.objects.get(username="carol")
    assert carol.role == User.Role.AUDITOR and carol.check_password("long-enough-secret")

    client.post(reverse("accounts:user-role", args=[carol.pk]), {"role": "employee"}, headers=HTMX)
    short = client.post(reverse("accounts:user-create"), {"username": "dave", "password": "short"}, headers=HTMX)

    carol.refresh_from_db()
    assert carol.role == User.Role.EMPLOYEE
    assert short.status_code == 400 and not User.objects.filter(username="dave").exists()


def test_a_department_admin_cannot_create_users_or_departments(client):
    finance = make_department("Finance")
    admin = make_user(department=finance, admin=True)
    client.login(username=admin.username, password=PASSWORD)

    user_response = client.post(
        reverse("accounts:user-create"), {"username": "mallory", "password": "long-enough-secret"}, headers=HTMX
    )
    department_response = client.post(reverse("accounts:department-create"), {"name": "Shadow"}, headers=HTMX)

    assert user_response.status_code == 403 and department_response.status_code == 403
    assert not User.objects.filter(username="mallory").exists()
    assert not Department.objects.filter(name="Shadow").exists()
