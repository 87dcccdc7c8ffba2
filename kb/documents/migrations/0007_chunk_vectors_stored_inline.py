from django.db import migrations


# A chunk row is past PostgreSQL's 2 kB toast threshold: a 384-d vector (1.5 kB), a tsvector (~0.7 kB compressed)
# and the text. PostgreSQL then moves columns to the TOAST table, largest first: the vector (pgvector's type allows
# that), so that every distance a search computed fetched it from there. MAIN keeps the vector and the tsvector (which
# keyword search reads for every candidate it filters or ranks) in the row and moves the text out instead: it is
# read only for the few passages a search returns (bench/permission_search_scale.py). Rows written before this
# migration keep their layout until the table is rewritten (VACUUM FULL, or an embedding model change).
class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0006_chunk_permission_columns"),
    ]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE documents_chunk ALTER COLUMN embedding SET STORAGE MAIN, "
            "ALTER COLUMN embedding_next SET STORAGE MAIN, ALTER COLUMN search_vector SET STORAGE MAIN",
            "ALTER TABLE documents_chunk ALTER COLUMN embedding SET STORAGE EXTERNAL, "
            "ALTER COLUMN embedding_next SET STORAGE EXTERNAL, ALTER COLUMN search_vector SET STORAGE EXTENDED",
        ),
    ]
