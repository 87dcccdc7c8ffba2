"""Conversations belong to their asker: listed, opened, renamed and deleted by them alone; deleting hides, the audit
trail keeps every record."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404
from django.test import Client
from django.urls import reverse

from kb.audit.models import AuditEvent, QueryRecord
from kb.audit.services import query_record_create
from kb.chat.models import Conversation, Question
from kb.chat.selectors import (
    conversation_get_for_owner,
    conversation_questions_for_owner,
    conversations_of_user,
    question_get_for_asker,
)
from kb.chat.services import conversation_delete, conversation_rename, question_create, question_finish
from tests.factories import make_user

pytestmark = pytest.mark.django_db

FIRST = "Why does Python use indentation for grouping statements?"
FOLLOW_UP = "And what about braces instead?"


def _answered(user, text: str, *, conversation: Conversation | None = None) -> Question:
    """A question with its recorded answer, as its stream leaves it (no model asked: these tests are about the rows)."""
    question = question_create(
        acting_user=user, text=text, conversation_id=conversation.pk if conversation is not None else None
    )
    record = query_record_create(
        user=user,
        department_names=[],
        question=text,
        answer=f"Recorded answer to: {text}",
        passages=[],
        model="test-model",
        backend="test",
        generation_params={},
        prompt_tokens=10,
        completion_tokens=5,
        retrieval_ms=1,
        first_token_ms=2,
        total_ms=3,
        scope={"conversation": question.conversation_id},
    )
    question_finish(question_id=question.pk, record=record)
    question.refresh_from_db()
    return question


def _conversation_events(conversation: Conversation):
    return AuditEvent.objects.filter(subject_type="chat.Conversation", subject_id=str(conversation.pk))


def _logged_in(user, **client_options) -> Client:
    client = Client(**client_options)
    client.force_login(user)
    return client


# Selectors


def test_the_list_holds_only_the_users_own_visible_conversations_last_asked_in_first_with_counts():
    alice, bob = make_user(), make_user()
    older = _answered(alice, FIRST).conversation
    newer = _answered(alice, "How are dictionaries implemented?").conversation
    deleted = _answered(alice, "What is a lambda?").conversation
    _answered(bob, "Bob's own question?")
    conversation_delete(acting_user=alice, conversation_id=deleted.pk)
    _answered(alice, FOLLOW_UP, conversation=older)  # asked in last: back to the top

    listed = list(conversations_of_user(user=alice))

    assert [conversation.pk for conversation in listed] == [older.pk, newer.pk]
    assert [conversation.question_count for conversation in listed] == [2, 1]


def test_renaming_does_not_reorder_the_list():
    alice = make_user()
    older = _answered(alice, FIRST).conversation
    newer = _answered(alice, "How are dictionaries implemented?").conversation

    conversation_rename(acting_user=alice, conversation_id=older.pk, title="Indentation")

    assert [conversation.pk for conversation in conversations_of_user(user=alice)] == [newer.pk, older.pk]


def test_a_conversation_opens_for_its_owner_only_and_no_longer_once_deleted():
    alice, bob = make_user(), make_user()
    conversation = _answered(alice, FIRST).conversation

    assert conversation_get_for_owner(user=alice, conversation_id=conversation.pk) == conversation
    with pytest.raises(Http404):
        conversation_get_for_owner(user=bob, conversation_id=conversation.pk)
    assert conversation_questions_for_owner(user=bob, conversation_id=conversation.pk) == []

    conversation_delete(acting_user=alice, conversation_id=conversation.pk)

    with pytest.raises(Http404):
        conversation_get_for_owner(user=alice, conversation_id=conversation.pk)
    assert conversation_questions_for_owner(user=alice, conversation_id=conversation.pk) == []


def test_the_questions_come_in_the_order_asked_each_with_its_record():
    alice = make_user()
    first = _answered(alice, FIRST)
    follow_up = _answered(alice, FOLLOW_UP, conversation=first.conversation)

    questions = conversation_questions_for_owner(user=alice, conversation_id=first.conversation_id)

    assert [question.pk for question in questions] == [first.pk, follow_up.pk]
    assert [question.query_record.answer for question in questions] == [
        f"Recorded answer to: {FIRST}",
        f"Recorded answer to: {FOLLOW_UP}",
    ]


# Services


def test_renaming_collapses_spaces_and_records_the_title_before_and_after():
    alice = make_user()
    conversation = _answered(alice, FIRST).conversation

    conversation_rename(acting_user=alice, conversation_id=conversation.pk, title="  Python   layout \n")

    conversation.refresh_from_db()
    assert conversation.title == "Python layout"
    event = _conversation_events(conversation).get()
    assert (event.kind, event.actor) == (AuditEvent.Kind.CONVERSATION_RENAMED, alice)
    assert (event.before, event.after) == ({"title": FIRST}, {"title": "Python layout"})


@pytest.mark.parametrize("title", ["", "   \n ", "x" * 201])
def test_an_empty_or_too_long_title_is_refused_and_changes_nothing(title):
    alice = make_user()
    conversation = _answered(alice, FIRST).conversation

    with pytest.raises(ValidationError):
        conversation_rename(acting_user=alice, conversation_id=conversation.pk, title=title)

    conversation.refresh_from_db()
    assert conversation.title == FIRST and not _conversation_events(conversation).exists()


def test_a_title_of_200_characters_is_kept_whole():
    alice = make_user()
    conversation = _answered(alice, FIRST).conversation

    conversation_rename(acting_user=alice, conversation_id=conversation.pk, title="x" * 200)

    conversation.refresh_from_db()
    assert conversation.title == "x" * 200


def test_someone_elses_conversation_cannot_be_renamed_or_deleted_as_if_it_did_not_exist():
    alice, bob = make_user(), make_user()
    conversation = _answered(alice, FIRST).conversation

    with pytest.raises(Http404):
        conversation_rename(acting_user=bob, conversation_id=conversation.pk, title="Mine now")
    with pytest.raises(Http404):
        conversation_delete(acting_user=bob, conversation_id=conversation.pk)

    conversation.refresh_from_db()
    assert (conversation.title, conversation.hidden_at) == (FIRST, None)
    assert not _conversation_events(conversation).exists()


def test_deleting_hides_the_conversation_and_keeps_its_questions_and_their_records():
    alice = make_user()
    first = _answered(alice, FIRST)
    follow_up = _answered(alice, FOLLOW_UP, conversation=first.conversation)
    conversation = first.conversation
    records_before = list(QueryRecord.objects.order_by("pk").values())

    conversation_delete(acting_user=alice, conversation_id=conversation.pk)

    conversation.refresh_from_db()
    assert conversation.hidden_at is not None
    assert not conversations_of_user(user=alice).exists()
    assert list(QueryRecord.objects.order_by("pk").values()) == records_before
    assert list(Question.objects.order_by("pk").values_list("pk", "query_record_id")) == [
        (first.pk, first.query_record_id),
        (follow_up.pk, follow_up.query_record_id),
    ]
    event = _conversation_events(conversation).get()
    assert (event.kind, event.actor) == (AuditEvent.Kind.CONVERSATION_DELETED, alice)
    assert event.before == {"title": FIRST, "hidden_at": None}
    assert event.after == {"title": FIRST, "hidden_at": conversation.hidden_at.isoformat()}
    with pytest.raises(Http404):  # once only, and no renaming what is gone
        conversation_delete(acting_user=alice, conversation_id=conversation.pk)
    with pytest.raises(Http404):
        conversation_rename(acting_user=alice, conversation_id=conversation.pk, title="Back")
    for question in (first, follow_up):  # nor are its questions shown by their own addresses
        with pytest.raises(Http404):
            question_get_for_asker(user=alice, question_id=question.pk)


def test_a_question_sent_to_a_deleted_conversation_starts_a_new_one():
    alice = make_user()
    first = _answered(alice, FIRST)
    conversation_delete(acting_user=alice, conversation_id=first.conversation_id)

    question = question_create(acting_user=alice, text=FOLLOW_UP, conversation_id=first.conversation_id)

    assert question.conversation_id != first.conversation_id
    assert (question.conversation.user, question.conversation.hidden_at) == (alice, None)
    assert list(Question.objects.filter(conversation_id=first.conversation_id)) == [first]
    with pytest.raises(ValidationError):  # nor is a question of a deleted conversation answered again
        question_create(acting_user=alice, text="", regenerates_id=first.pk)


# Views


def test_the_ask_page_lists_the_users_conversations_and_offers_a_new_one():
    alice, bob = make_user(), make_user()
    mine = _answered(alice, FIRST).conversation
    _answered(bob, "Bob's own question?")

    page = _logged_in(alice).get(reverse("chat:page")).content.decode()

    assert f'href="{reverse("chat:conversation", args=[mine.pk])}"' in page and FIRST in page
    assert "Bob&#x27;s own question?" not in page and "1 question<" in page
    assert re.search(r'<a href="/" class="new-conversation">New conversation</a>', page)
    assert re.search(r'name="conversation" id="conversation-field" value=""', page)


def test_an_opened_conversation_replays_its_exchanges_oldest_first_without_asking_the_model():
    alice = make_user()
    first = _answered(alice, FIRST)
    follow_up = _answered(alice, FOLLOW_UP, conversation=first.conversation)
    conversation = first.conversation

    response = _logged_in(alice).get(reverse("chat:conversation", args=[conversation.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    exchanges = re.findall(r'<article class="exchange done" data-query-record="(\d+)">', page)
    assert exchanges == [str(first.query_record_id), str(follow_up.query_record_id)]
    assert page.index(f"Recorded answer to: {FIRST}") < page.index(f"Recorded answer to: {FOLLOW_UP}")
    assert f'name="conversation" id="conversation-field" value="{conversation.pk}"' in page
    assert 'aria-current="page"' in page and "sse-connect" not in page
    assert QueryRecord.objects.count() == 2
    assert set(Question.objects.values_list("state", flat=True)) == {Question.State.ANSWERED}


def test_someone_elses_or_a_deleted_conversation_is_not_found():
    alice, bob = make_user(), make_user()
    conversation = _answered(alice, FIRST).conversation
    bob_client = _logged_in(bob)

    assert bob_client.get(reverse("chat:conversation", args=[conversation.pk])).status_code == 404
    rename = bob_client.post(reverse("chat:conversation-rename", args=[conversation.pk]), {"title": "Mine"})
    assert rename.status_code == 404
    assert bob_client.post(reverse("chat:conversation-delete", args=[conversation.pk])).status_code == 404
    conversation.refresh_from_db()
    assert (conversation.title, conversation.hidden_at) == (FIRST, None)

    alice_client = _logged_in(alice)
    alice_client.post(reverse("chat:conversation-delete", args=[conversation.pk]))
    assert alice_client.get(reverse("chat:conversation", args=[conversation.pk])).status_code == 404


def test_rename_and_delete_are_not_done_by_a_get():
    alice = make_user()
    conversation = _answered(alice, FIRST).conversation
    client = _logged_in(alice)

    assert client.get(reverse("chat:conversation-rename", args=[conversation.pk]), {"title": "X"}).status_code == 405
    assert client.get(reverse("chat:conversation-delete", args=[conversation.pk])).status_code == 405
    conversation.refresh_from_db()
    assert (conversation.title, conversation.hidden_at) == (FIRST, None)


def test_rename_and_delete_need_the_csrf_token():
    alice = make_user()
    conversation = _answered(alice, FIRST).conversation
    client = _logged_in(alice, enforce_csrf_checks=True)
    rename_url = reverse("chat:conversation-rename", args=[conversation.pk])
    delete_url = reverse("chat:conversation-delete", args=[conversation.pk])

    assert client.post(rename_url, {"title": "Forged"}).status_code == 403
    assert client.post(delete_url).status_code == 403
    conversation.refresh_from_db()
    assert (conversation.title, conversation.hidden_at) == (FIRST, None)

    page = client.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(rename_url, {"title": "Layout", "csrfmiddlewaretoken": token}).status_code == 200
    assert client.post(delete_url, {"csrfmiddlewaretoken": token}).status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "Layout" and conversation.hidden_at is not None


def test_renaming_by_htmx_answers_the_header_and_the_list_out_of_band():
    alice = make_user()
    conversation = _answered(alice, FIRST).conversation
    client = _logged_in(alice)
    url = reverse("chat:conversation-rename", args=[conversation.pk])

    response = client.post(url, {"title": "Python layout"}, headers={"HX-Request": "true"})

    partial = response.content.decode()
    assert response.status_code == 200
    assert partial.lstrip().startswith('<header id="conversation-header"')
    assert "<h1>Python layout</h1>" in partial
    assert re.search(r'<ul id="conversation-items" hx-swap-oob="true">.*Python layout', partial, re.DOTALL)
    assert "<html" not in partial

    refused = client.post(url, {"title": "  "}, headers={"HX-Request": "true"})

    assert refused.status_code == 400 and "Give the conversation a title." in refused.content.decode()
    conversation.refresh_from_db()
    assert conversation.title == "Python layout"


def test_after_deleting_the_user_lands_on_the_empty_ask_page():
    alice = make_user()
    kept = _answered(alice, "How are dictionaries implemented?").conversation
    conversation = _answered(alice, FIRST).conversation
    client = _logged_in(alice)

    response = client.post(reverse("chat:conversation-delete", args=[conversation.pk]), follow=True)

    page = response.content.decode()
    assert response.redirect_chain == [(reverse("chat:page"), 302)]
    assert "<h1>Ask the knowledge base</h1>" in page and 'id="conversation-field" value=""' in page
    assert reverse("chat:conversation", args=[conversation.pk]) not in page
    assert reverse("chat:conversation", args=[kept.pk]) in page


def test_a_first_question_shows_its_new_conversation_in_the_list_and_the_address_bar():
    alice = make_user()
    client = _logged_in(alice)

    response = client.post(
        reverse("chat:ask"), {"question": FIRST}, headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/"}
    )

    conversation = Conversation.objects.get()
    conversation_url = reverse("chat:conversation", args=[conversation.pk])
    partial = response.content.decode()
    assert response.status_code == 200 and response["HX-Push-Url"] == conversation_url
    assert re.search(rf'<ul id="conversation-items" hx-swap-oob="true">.*href="{conversation_url}"', partial, re.DOTALL)

    follow_up = client.post(
        reverse("chat:ask"),
        {"question": FOLLOW_UP, "conversation": conversation.pk},
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{conversation_url}"},
    )

    assert follow_up.status_code == 200 and "HX-Push-Url" not in follow_up
    assert Conversation.objects.get().questions.count() == 2
