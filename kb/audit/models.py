from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One state change by someone, written in the same transaction as the change."""

    class Kind(models.TextChoices):
        DEPARTMENT_CREATED = "department.created"
        DEPARTMENT_MOVED = "department.moved"
        MEMBERSHIP_CREATED = "membership.created"
        MEMBERSHIP_DELETED = "membership.deleted"
        MEMBERSHIP_ROLE_CHANGED = "membership.role_changed"
        USER_CREATED = "user.created"
        USER_ROLE_CHANGED = "user.role_changed"
        USER_PROFILE_SYNCED = "user.profile_synced"
        USER_DEACTIVATED = "user.deactivated"
        USER_REACTIVATED = "user.reactivated"
        COLLECTION_CREATED = "collection.created"
        DOCUMENT_UPLOADED = "document.uploaded"
        BATCH_UPLOADED = "batch.uploaded"
        DOCUMENT_INGESTED = "document.ingested"
        DOCUMENT_FAILED = "document.failed"
        DOCUMENT_RETRIED = "document.retried"
        DOCUMENT_REQUEUED = "document.requeued"
        DOCUMENT_DELETED = "document.deleted"
        DOCUMENT_MOVED = "document.moved"
        COLLECTION_DELETED = "collection.deleted"
        COLLECTION_VISIBILITY_CHANGED = "collection.visibility_changed"
        GRANT_CREATED = "grant.created"
        GRANT_REVOKED = "grant.revoked"
        EMBEDDING_MODEL_CHANGE_STARTED = "embedding_model.change_started"
        EMBEDDING_MODEL_ACTIVATED = "embedding_model.activated"
        CONVERSATION_RENAMED = "conversation.renamed"
        CONVERSATION_DELETED = "conversation.deleted"
        AUDIT_EXPORTED = "audit.exported"
        AUDIT_PURGED = "audit.purged"
        EVALUATION_SET_CREATED = "evaluation_set.created"
        EVALUATION_SET_IMPORTED = "evaluation_set.imported"
        EVALUATION_QUESTION_ADDED = "evaluation_question.added"
        EVALUATION_QUESTION_DELETED = "evaluation_question.deleted"
        EVALUATION_RUN_QUEUED = "evaluation_run.queued"
        EVALUATION_RUN_FINISHED = "evaluation_run.finished"
        EVALUATION_RUN_FAILED = "evaluation_run.failed"
        API_TOKEN_CREATED = "api_token.created"
        API_TOKEN_REVOKED = "api_token.revoked"

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=64, choices=Kind.choices)
    subject_type = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class QueryRecord(models.Model):
    """What one question was, what the user was shown and how long it took; or one search, and the passages it
    showed (no model, no answer)."""

    # The channels of searches (kb.search.services); an answer's are "web", "api" and "evaluation".
    SEARCH_CHANNELS = ("search", "api-search")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="query_records")
    department_names = models.JSONField(default=list)
    channel = models.CharField(max_length=16, default="web")
    question = models.TextField()
    answer = models.TextField(blank=True)
    model = models.CharField(max_length=200)  # the model that answered, after routing
    backend = models.CharField(max_length=32)
    route = models.JSONField(default=dict)  # {"skipped": ["qwen3.5-9b: overloaded (...)"]}
    generation_params = models.JSONField(default=dict)  # including enable_thinking
    thinking = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    retrieval_ms = models.PositiveIntegerField()
    first_token_ms = models.PositiveIntegerField(null=True)
    total_ms = models.PositiveIntegerField()
    error = models.TextField(blank=True)
    # What the question was asked over, and the permission filter its search ran under at that moment.
    scope = models.JSONField(default=dict)  # {"mode": "hybrid", "k": 4, "filters": {...}}
    permission_filter = models.JSONField(default=dict)  # {"role": ..., "departments": [...], "collections": [...]}
    citations = models.JSONField(default=list)  # [{"number": 1, "chunk_id": ...}] as cited in the answer
    # "removed_citations" (the model cited a passage it was not given), "error", "no_passages"
    flags = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Trigram indexes on UPPER(question) and UPPER(answer) serve the auditor's text filter (icontains runs as
        # UPPER(...) LIKE): migration 0008, in SQL, as Django renders expression operator classes without the
        # parentheses PostgreSQL requires.

    @property
    def is_search(self) -> bool:
        return self.channel in self.SEARCH_CHANNELS


class QueryFeedback(models.Model):
    """A user's verdict on an answer; its own append-only row, so the record it judges never changes."""

    class Rating(models.IntegerChoices):
        HELPFUL = 1, "Helpful"
        NOT_HELPFUL = -1, "Not helpful"

    query = models.ForeignKey(QueryRecord, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class LedgerEntry(models.Model):
    """One link of the hash chain over every audit row (admin events, query records, feedback).

    Each entry's hash covers its own row's content hash and the previous entry's hash, so changing or removing
    any recorded row, or any entry, breaks the chain from that point on (`manage.py audit_verify` names it).
    """

    class Kind(models.TextChoices):
        EVENT = "event"
        QUERY = "query"
        FEEDBACK = "feedback"
        PURGE = "purge"  # the first entry after a retention purge: it continues from the removed range's hash

    sequence = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    object_id = models.BigIntegerField()
    content_hash = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["sequence"]
        constraints = [models.UniqueConstraint(fields=["kind", "object_id"], name="ledger_one_entry_per_row")]


class QueryPassage(models.Model):
    """A retrieved passage as the user received it; kept even after its chunk is deleted."""

    query = models.ForeignKey(QueryRecord, on_delete=models.CASCADE, related_name="passages")
    rank = models.PositiveSmallIntegerField()
    chunk_id = models.BigIntegerField()
    document_id = models.BigIntegerField()
    version_id = models.BigIntegerField()
    score = models.FloatField()
    sent_to_model = models.BooleanField()
    text = models.TextField()

    class Meta:
        ordering = ["query_id", "rank"]
        constraints = [models.UniqueConstraint(fields=["query", "rank"], name="query_passage_unique_rank")]
