"""Evaluation sets (questions with the text spans that answer them) and their runs against the live search."""

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import MD5

from kb.accounts.models import Department

MODES = ("keyword", "dense", "hybrid")


class EvaluationSet(models.Model):
    """A department's questions about its documents; its admins edit and run it.

    A run searches as its owner (who started it; an automatic run, as the set's creator), so that a set measures what
    that person may read and nothing more.
    """

    name = models.CharField(max_length=200, unique=True)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="evaluation_sets")
    # Run again by itself after a document is re-ingested into a collection its creator reads, or the embedding model
    # changes.
    auto_run = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EvaluationQuestion(models.Model):
    evaluation_set = models.ForeignKey(EvaluationSet, on_delete=models.CASCADE, related_name="questions")
    text = models.TextField()
    # [{"document": "faq/design.html", "span": "..."}]: a document's original name and text it holds, not chunk ids,
    # so that re-chunking or re-ingesting keeps the question valid (evaluation.sets).
    expected = models.JSONField(default=list, blank=True)
    facts = models.JSONField(default=list, blank=True)  # what a good answer must state
    unanswerable = models.BooleanField(default=False)  # the right outcome is "not in the sources"
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            # By the text's hash: a B-tree entry holds at most about 2.7 kB, less than a long question in most scripts.
            models.UniqueConstraint(
                F("evaluation_set"),
                MD5("text"),
                name="evaluation_question_unique_text",
                violation_error_message="The set already has this question.",
            ),
        ]

    def __str__(self) -> str:
        return self.text[:80]


class EvaluationRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Started by hand"
        COMMAND = "command", "manage.py kb_evaluate"
        INGESTION = "ingestion", "After a document was ingested"
        EMBEDDING_MODEL = "embedding_model", "After the embedding model changed"

    evaluation_set = models.ForeignKey(EvaluationSet, on_delete=models.CASCADE, related_name="runs")
    # Whose permissions the run searched with.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    questions_total = models.PositiveIntegerField(default=0)
    questions_done = models.PositiveIntegerField(default=0)
    # Each question is also answered through the ask flow, as the owner, and the answer scored (slow on a CPU).
    answers = models.BooleanField(default=False)
    # What the run ran with: embedding model, chunking, retrieval settings, the document versions it could read, and
    # with answers the answering model, its sampling and answer length.
    configuration = models.JSONField(default=dict, blank=True)
    # {"keyword": {"recall@1": ..., "mrr@10": ..., "ndcg@10": ...}, "dense": {...}, "hybrid": {...},
    #  "abstention": {...}, "answers": {"citation_accuracy": ..., "key_fact_recall": ..., "abstention": ...}}
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Moved while the worker works, so that a run whose worker died is seen and closed as failed.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.evaluation_set}"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}


class EvaluationResult(models.Model):
    """One question's outcome in one run, kept as it was (the question's text is copied: questions change)."""

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="results")
    question = models.ForeignKey(
        EvaluationQuestion, null=True, blank=True, on_delete=models.SET_NULL, related_name="results"
    )
    question_text = models.TextField()
    unanswerable = models.BooleanField(default=False)
    # Per mode: {"rank": first relevant passage's 1-based rank or null, "ndcg": nDCG@10, "chunk_ids": top 10,
    # "scores": their scores}.
    modes = models.JSONField(default=dict)
    # The question's cosine similarity to its nearest readable passage: what "not in the sources" is decided on, kept
    # so that a threshold can be chosen afterwards.
    best_similarity = models.FloatField(null=True, blank=True)
    abstained = models.BooleanField(default=False)  # at the run's KB_ABSTAIN_BELOW_SIMILARITY
    # With answers on (evaluation.answers says how each is scored); empty or null in a run without.
    answer = models.TextField(blank=True)
    # [{"number": 1, "chunk_id": ..., "document": "leave.md", "expected": true}]: the answer's citations, in order, and
    # whether the passage each points to holds an expected span.
    answer_citations = models.JSONField(default=list, blank=True)
    answer_cites_expected = models.BooleanField(null=True, blank=True)  # null for an unanswerable question
    answer_facts = models.JSONField(default=list, blank=True)  # [{"fact": "25 days", "stated": true}]
    answer_abstained = models.BooleanField(null=True, blank=True)  # the answer said the documents do not say
    answer_error = models.TextField(blank=True)  # the answer failed (model busy, down); it is left out of the scores

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.question_text[:60]} in run {self.run_id}"

    def rank(self, mode: str = "hybrid") -> int | None:
        return (self.modes.get(mode) or {}).get("rank")

    @property
    def is_answered(self) -> bool:
        """An answer was asked for and came: the answer scores apply."""
        return self.answer_abstained is not None and not self.answer_error

    @property
    def facts_stated(self) -> int:
        return sum(fact["stated"] for fact in self.answer_facts)
