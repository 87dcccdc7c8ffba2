from dataclasses import dataclass

from django.db.models import Count, QuerySet
from django.http import Http404

from kb.accounts.models import User
from kb.chat.models import Conversation, Question


def question_get_for_asker(*, user: User, question_id: int) -> Question:
    """The question, for the one who asked it only and until they delete its conversation: anyone else, and its asker
    after deleting it, get the same 404 as for a question that never was (conversation_get_for_owner)."""
    question = (
        Question.objects.select_related("conversation", "query_record")
        .filter(pk=question_id, conversation__user_id=user.pk, conversation__hidden_at=None)
        .first()
    )
    if question is None:
        raise Http404("No such question.")
    return question


def conversations_of_user(*, user: User) -> QuerySet[Conversation]:
    """The user's own conversations that they have not deleted, the one asked in most recently first, each with its
    `question_count`. Renaming does not reorder them (it leaves `updated_at` alone)."""
    return (
        Conversation.objects.filter(user_id=user.pk, hidden_at=None)
        .annotate(question_count=Count("questions"))
        .order_by("-updated_at", "-pk")
    )


def conversation_get_for_owner(*, user: User, conversation_id: int) -> Conversation:
    """The conversation, for its owner only and until they delete it: anyone else, and its owner after deleting it,
    get the same 404 as for a conversation that never was."""
    conversation = Conversation.objects.filter(pk=conversation_id, user_id=user.pk, hidden_at=None).first()
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


def conversation_questions_for_owner(*, user: User, conversation_id: int) -> list[Question]:
    """The questions of one of the user's conversations in the order they were asked, each with its answer's record
    (None while it is unanswered); empty for a conversation that is not theirs or that they deleted."""
    return list(
        Question.objects.filter(
            conversation_id=conversation_id, conversation__user_id=user.pk, conversation__hidden_at=None
        )
        .select_related("query_record")
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class Turn:
    """An earlier exchange of a conversation, as a follow-up's prompt carries it. An API client sends its history
    with each request: its turns have no question or record here (None)."""

    question_id: int | None
    record_id: int | None
    question: str
    answer: str


def conversation_turns_before(*, question: Question) -> list[Turn]:
    """The exchanges of the question's conversation before it that got an answer (stopped ones too), oldest first;
    an exchange answered again by a regeneration counts once, with its newest answer."""
    earlier = list(
        Question.objects.filter(
            conversation_id=question.conversation_id,
            id__lt=question.pk,
            state__in=(Question.State.ANSWERED, Question.State.STOPPED),
            query_record__isnull=False,
        )
        .select_related("query_record")
        .order_by("id")
    )
    replaced = {q.regenerates_id for q in earlier if q.regenerates_id} | {question.regenerates_id}
    return [
        Turn(question_id=q.pk, record_id=q.query_record_id, question=q.text, answer=q.query_record.answer)
        for q in earlier
        if q.pk not in replaced and q.query_record.answer
    ]


def question_stop_requested(*, question_id: int) -> bool:
    return Question.objects.filter(pk=question_id, stop_requested=True).exists()
