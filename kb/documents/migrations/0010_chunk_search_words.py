import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models


def _words_of(field: str) -> models.Func:
    return models.Func(
        field,
        models.Value("[[:punct:]]+"),
        models.Value(" "),
        models.Value("g"),
        function="regexp_replace",
        output_field=models.TextField(),
    )


# Keyword search reads punctuation as a space (kb.documents.models.Chunk.search_vector). PostgreSQL cannot change a
# generated column's expression: the column (and its GIN index) is dropped and added again, which rewrites the chunk
# table and rebuilds the index (minutes at a million chunks). STORAGE MAIN as 0007 set it.
class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0009_chunk_pages"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="chunk", name="chunk_search_vector_gin"),
        migrations.RemoveField(model_name="chunk", name="search_vector"),
        migrations.AddField(
            model_name="chunk",
            name="search_vector",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.contrib.postgres.search.CombinedSearchVector(
                    django.contrib.postgres.search.SearchVector(_words_of("heading"), config="english", weight="A"),
                    "||",
                    django.contrib.postgres.search.SearchVector(_words_of("text"), config="english", weight="B"),
                    django.contrib.postgres.search.SearchConfig("english"),
                ),
                output_field=django.contrib.postgres.search.SearchVectorField(),
            ),
        ),
        migrations.RunSQL(
            "ALTER TABLE documents_chunk ALTER COLUMN search_vector SET STORAGE MAIN",
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name="chunk",
            index=django.contrib.postgres.indexes.GinIndex(fields=["search_vector"], name="chunk_search_vector_gin"),
        ),
    ]
