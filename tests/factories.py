"""Real rows made through the services, the way the app makes them."""

import itertools
from dataclasses import dataclass
from pathlib import Path

from kb.accounts.models import Department, Membership, User
from kb.accounts.selectors import departments_of_user
from kb.accounts.services import department_create, membership_create, user_create
from kb.audit.models import QueryRecord
from kb.audit.services import query_record_create
from kb.chat.models import Question
from kb.chat.services import question_finish
from kb.documents.models import Collection, Document, DocumentVersion
from kb.documents.services import collection_create, document_upload, document_version_ingest
from kb.platform.actors import system_actor

PASSWORD = "correct-horse-battery"
_sequence = itertools.count(1)


def make_department(name: str | None = None, *, parent: Department | None = None) -> Department:
    return department_create(acting_user=system_actor(), name=name or f"Department {next(_sequence)}", parent=parent)


def make_user(*, department: Department | None = None, admin: bool = False, username: str | None = None) -> User:
    user = user_create(acting_user=system_actor(), username=username or f"user{next(_sequence)}", password=PASSWORD)
    if department is not None:
        role = Membership.Role.ADMIN if admin else Membership.Role.MEMBER
        membership_create(acting_user=system_actor(), user=user, department=department, role=role)
    return user


def make_superuser(username: str = "root") -> User:
    user = make_user(username=username)
    user.is_superuser = True
    user.save()
    return user


def department_names_of(user: User) -> list[str]:
    """The departments a query record names for its asker (theirs and those above), as the search reads them."""
    return list(departments_of_user(user=user).order_by("name").values_list("name", flat=True))


def make_collection(
    *, owner: Department, visibility: Collection.Visibility = Collection.Visibility.DEPARTMENT, name: str = ""
) -> Collection:
    return collection_create(
        acting_user=system_actor(), name=name or f"Collection {next(_sequence)}", owner=owner, visibility=visibility
    )


def collection_admin_logged_in(client, department_name: str) -> tuple[Department, Collection, User]:
    """A department with a collection, and the department's admin logged in on `client`."""
    department = make_department(department_name)
    collection = make_collection(owner=department)
    admin = make_user(department=department, admin=True)
    assert client.login(username=admin.username, password=PASSWORD)
    return department, collection, admin


def upload(*, user: User, collection: Collection, name: str, content: bytes, enqueue: bool = True) -> DocumentVersion:
    return document_upload(acting_user=user, collection=collection, name=name, data=content, enqueue=enqueue)


def ingested_document(*, collection: Collection, name: str, content: bytes) -> Document:
    """Upload as the owning department's admin and ingest in this process (no worker involved: no job is queued,
    which a live stack's worker would run beside the test and its database flush)."""
    admin = make_user(department=collection.owner, admin=True)
    version = upload(user=admin, collection=collection, name=name, content=content, enqueue=False)
    document_version_ingest(version_id=version.pk)
    return Document.objects.select_related("current_version").get(pk=version.document_id)


def answer_recorded(*, question: Question, answer: str, citations: list[dict] | None = None) -> QueryRecord:
    """The question answered and on record, as a finished stream leaves it: its stream now replays the record."""
    record = query_record_create(
        user=question.conversation.user,
        department_names=department_names_of(question.conversation.user),
        question=question.text,
        answer=answer,
        passages=[],
        model="stored-for-the-test",
        backend="none",
        generation_params={},
        prompt_tokens=0,
        completion_tokens=0,
        retrieval_ms=0,
        first_token_ms=None,
        total_ms=0,
        scope={"question": question.pk},
        citations=citations or [],
    )
    question_finish(question_id=question.pk, record=record)
    return record


PARKING_NOTE = b"""# Parking at the Leeds office

Staff park in the basement garage on level -2. Visitors get a day pass from reception.
The garage closes at 22:00; after that, leave by the Kirkgate exit.
"""


@dataclass(frozen=True)
class FaqAndNotes:
    department: Department
    faq: Collection
    notes: Collection
    note: Document


def department_with_faq_and_notes(python_docs: Path, name: str = "Engineering") -> FaqAndNotes:
    """A department reading two collections: the Python design FAQ (long, several passages) and a one-passage note."""
    department = make_department(name)
    faq = make_collection(owner=department, name="Python FAQ")
    ingested_document(collection=faq, name="design.html", content=(python_docs / "faq" / "design.html").read_bytes())
    notes = make_collection(owner=department, name="Office notes")
    note = ingested_document(collection=notes, name="parking.md", content=PARKING_NOTE)
    return FaqAndNotes(department=department, faq=faq, notes=notes, note=note)
