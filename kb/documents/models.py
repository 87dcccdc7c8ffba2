from django.conf import settings
from django.db import models
from pgvector.django import HnswIndex, VectorField

from kb.accounts.models import Department


class Collection(models.Model):
    class Visibility(models.TextChoices):
        DEPARTMENT = "department", "Owning department only"
        COMPANY = "company", "Whole company"

    name = models.CharField(max_length=200, unique=True)
    owner = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="collections")
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.DEPARTMENT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def _upload_path(document: "Document", filename: str) -> str:
    return f"collections/{document.collection_id}/{document.content_hash[:16]}/{filename}"


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PARSING = "parsing", "Parsing"
        EMBEDDING = "embedding", "Embedding"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    original_name = models.CharField(max_length=255)
    file = models.FileField(upload_to=_upload_path, max_length=500)
    content_hash = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    failure_reason = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "content_hash"], name="document_unique_content_per_collection")
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.READY, self.Status.FAILED}


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=500, blank=True)
    text = models.TextField()
    # Offsets into the document's extracted text, so that the UI can point at the passage.
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField()
    embedding = VectorField(dimensions=settings.KB_EMBEDDING_DIMENSIONS)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal")]
        indexes = [
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            )
        ]
