import django.db.models.deletion
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models


# The embedding model row moves here from the search app, with its chunks' vectors: its state is declared here and
# deleted there (search 0002), its table only renamed, no row copied.
class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0007_chunk_vectors_stored_inline"),
        ("search", "0001_embedding_models"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="EmbeddingModel",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("name", models.CharField(max_length=200)),
                        ("path", models.CharField(blank=True, max_length=500)),
                        ("dimensions", models.PositiveIntegerField()),
                        (
                            "state",
                            models.CharField(
                                choices=[("active", "Active"), ("building", "Re-embedding"), ("retired", "Retired")],
                                max_length=16,
                            ),
                        ),
                        ("progress_done", models.PositiveIntegerField(default=0)),
                        ("progress_total", models.PositiveIntegerField(default=0)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("activated_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["-created_at"],
                        "db_table": "search_embeddingmodel",
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(("state", "active")),
                                fields=("state",),
                                name="one_active_embedding_model",
                            ),
                            models.UniqueConstraint(
                                condition=models.Q(("state", "building")),
                                fields=("state",),
                                name="one_embedding_model_building",
                            ),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="embeddingmodel", table=None),
        # The column keeps its type (vector(384) or whatever the last activation made it); see Chunk.embedding.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="chunk", name="embedding", field=pgvector.django.vector.VectorField()),
            ],
            database_operations=[],
        ),
    ]
