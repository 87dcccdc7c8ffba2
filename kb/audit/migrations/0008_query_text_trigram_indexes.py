from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_append_only")]

    operations = [
        TrigramExtension(),
        migrations.RunSQL(
            "CREATE INDEX query_question_trgm ON audit_queryrecord USING gin ((UPPER(question)) gin_trgm_ops);"
            "CREATE INDEX query_answer_trgm ON audit_queryrecord USING gin ((UPPER(answer)) gin_trgm_ops);",
            "DROP INDEX query_question_trgm; DROP INDEX query_answer_trgm;",
        ),
    ]
