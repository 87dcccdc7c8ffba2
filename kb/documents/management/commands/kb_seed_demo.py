"""Create a small demo organisation with real text from Debian's python3.11-doc, once."""

import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from kb.accounts.models import Membership, User
from kb.accounts.services import department_create, membership_create, user_create
from kb.documents.models import Collection
from kb.documents.services import collection_create, document_upload
from kb.platform.actors import system_actor
from kb.platform.file_modes import owner_only_file_create

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
DEMO_PASSWORDS_FILE = "demo-passwords.txt"
DEMO = {
    "Engineering": {
        "collection": "Python FAQ",
        "pages": ["faq/general.html", "faq/design.html"],
        "admin": "eng-admin",
        "employee": "alice",
    },
    "Operations": {
        "collection": "Python HOWTOs",
        "pages": ["howto/logging.html", "howto/sorting.html"],
        "admin": "ops-admin",
        "employee": "bob",
    },
}


class Command(BaseCommand):
    help = "Create the demo departments, users (passwords shown once) and collections if they do not exist."

    def handle(self, *args, **options):
        if User.objects.filter(username="admin").exists():
            self.stdout.write(
                f"demo organisation present (passwords were shown when it was created, or written to "
                f"{settings.VAR_DIR / DEMO_PASSWORDS_FILE}; `manage.py changepassword NAME` sets a new one)"
            )
            return
        passwords = self._create_organisation()
        table = "".join(f"    {name:<10} {password:<16} {what}\n" for name, (password, what) in passwords.items())
        if self.stdout.isatty():
            self.stdout.write(self.style.SUCCESS("Demo users (these passwords are shown only this once):"))
            self.stdout.write(table, ending="")
            return
        # Output that is not a terminal is likely kept (a log file, a service's journal), by whoever can read it.
        path = settings.VAR_DIR / DEMO_PASSWORDS_FILE
        _owner_only_file_write(path, "Demo users (delete this file once you have noted them):\n" + table)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo users created; their passwords are in {path} (readable by you only), not in this output, "
                "which is not a terminal"
            )
        )

    @transaction.atomic
    def _create_organisation(self) -> dict[str, tuple[str, str]]:
        passwords: dict[str, tuple[str, str]] = {}

        def new_user(username: str, what: str, **kwargs) -> User:
            password = secrets.token_urlsafe(9)
            passwords[username] = (password, what)
            return user_create(acting_user=system_actor(), username=username, password=password, **kwargs)

        admin = new_user("admin", "superuser", is_superuser=True)
        new_user("auditor", "compliance auditor", role=User.Role.AUDITOR)
        missing_docs = not PYTHON_DOCS.is_dir()
        for department_name, spec in DEMO.items():
            department = department_create(acting_user=admin, name=department_name)
            department_admin = new_user(spec["admin"], f"admin of {department_name}")
            membership_create(
                acting_user=admin, user=department_admin, department=department, role=Membership.Role.ADMIN
            )
            employee = new_user(spec["employee"], f"employee in {department_name}")
            membership_create(acting_user=admin, user=employee, department=department)
            collection = collection_create(
                acting_user=department_admin,
                name=spec["collection"],
                owner=department,
                visibility=Collection.Visibility.DEPARTMENT,
            )
            if missing_docs:
                continue
            for page in spec["pages"]:
                path = PYTHON_DOCS / page
                document_upload(
                    acting_user=department_admin, collection=collection, name=path.name, data=path.read_bytes()
                )
                self.stdout.write(f"    queued {page} into {collection.name} ({department_name})")
        if missing_docs:
            self.stdout.write(
                self.style.WARNING(
                    f"{PYTHON_DOCS} is missing (Debian package python3.11-doc): demo collections are empty"
                )
            )
        return passwords


def _owner_only_file_write(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with owner_only_file_create(path) as file:  # a list left by an earlier demo database is replaced
        file.write(text.encode())
