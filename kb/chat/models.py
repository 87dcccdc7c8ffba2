from django.conf import settings
from django.db import models


class Conversation(models.Model):
    """One user's exchanges with the knowledge base, in the order they were asked."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="conversations")
    title = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Deleted by its owner: hidden from them only; its questions' audit records stay with the audit trail.
    hidden_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title


class Question(models.Model):
    """A question as its asker sent it (a POST); answered at most once, by whoever first opens its stream."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for its stream"
        ANSWERING = "answering", "Being answered"
        ANSWERED = "answered", "Answered"
        STOPPED = "stopped", "Stopped by its asker"
        FAILED = "failed", "Failed or interrupted"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="questions")
    text = models.TextField()
    # What it is asked over (QuestionScope: collection ids, log time range, host, severities); empty: everything its
    # asker may read.
    scope = models.JSONField(default=dict, blank=True)
    thinking = models.BooleanField(default=False)  # the model reasons first, where it can
    # Another answer to an earlier question of the conversation, which the prompt's history then leaves out.
    regenerates = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Set by the asker's Stop (any process); the answering stream checks it and cancels generation in the engine.
    stop_requested = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # The audit trail's record of the answer; kept there when the question goes (retention purges only the record).
    query_record = models.OneToOneField(
        "audit.QueryRecord", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation_id", "created_at", "id"]

    def __str__(self) -> str:
        return self.text[:80]
