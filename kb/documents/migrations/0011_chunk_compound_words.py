import django.contrib.postgres.fields
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


def _compound_words_of(*fields: str) -> models.Func:
    text = models.Func(*(models.F(field) for field in fields), template="(%(expressions)s)", arg_joiner=" || ' ' || ")
    words = models.Func(
        text,
        function="kb_compound_words",
        output_field=django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), size=None),
    )
    return models.Func(
        words, function="array_to_tsvector", output_field=django.contrib.postgres.search.SearchVectorField()
    )


# Words joined by . - / : or @ ("192.0.2.7", "jail.local", "utf-16"), lower case, in order of appearance. The pattern
# is the one place that defines them: the chunk's search_vector and the question's keyword query both call this.
# One longer than a lexeme may be (2046 bytes) is left out, as to_tsvector leaves out such words: array_to_tsvector
# would refuse it, and with it the passage. IMMUTABLE, as a generated column requires: it depends on nothing but its
# argument (\w follows the database's character classes, fixed when the database is created, as text search
# configurations do).
COMPOUND_WORDS_FUNCTION = r"""
CREATE FUNCTION kb_compound_words(text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
SELECT ARRAY(
    SELECT m[1] FROM regexp_matches(lower($1), '(\w+(?:[-./:@]\w+)+)', 'g') AS m WHERE octet_length(m[1]) <= 2046
)
$$
"""


# The chunk's search_vector gains the compound words (kb.documents.models.Chunk.search_vector). As in 0010, the
# generated column and its GIN index are dropped and added again: the chunk table is rewritten and the index rebuilt
# (minutes at a million chunks). STORAGE MAIN as 0007 set it.
class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0010_chunk_search_words"),
    ]

    operations = [
        migrations.RunSQL(COMPOUND_WORDS_FUNCTION, "DROP FUNCTION kb_compound_words(text)"),
        migrations.RemoveIndex(model_name="chunk", name="chunk_search_vector_gin"),
        migrations.RemoveField(model_name="chunk", name="search_vector"),
        migrations.AddField(
            model_name="chunk",
            name="search_vector",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.contrib.postgres.search.CombinedSearchVector(
                    django.contrib.postgres.search.CombinedSearchVector(
                        django.contrib.postgres.search.SearchVector(_words_of("heading"), config="english", weight="A"),
                        "||",
                        django.contrib.postgres.search.SearchVector(_words_of("text"), config="english", weight="B"),
                        django.contrib.postgres.search.SearchConfig("english"),
                    ),
                    "||",
                    _compound_words_of("heading", "text"),
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
