from dataclasses import dataclass

from django.http import Http404

from kb.accounts.models import User
from kb.chat.models import Question


def question_get_for_asker(*, user: User, question_id: int) -> Question:
    """The question, for the one who asked it only: anyone else gets the same 404 as for a question that never was."""
    question = (
        Question.objects.select_related("conversation", "query_record")
        .filter(pk=question_id, conversation__user_id=user.pk)
        .first()
    )
    if question is None:
        raise Http404("No such question.")
    return question


@dataclass(frozen=True)
class Turn:
    """An earlier exchange of a conversation, as a follow-up's prompt carries it."""

    question_id: int
    record_id: int
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
