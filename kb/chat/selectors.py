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
