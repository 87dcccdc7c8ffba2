from django.db import migrations


# The embedding model row belongs to the documents app now (documents 0008 took over its table).
class Migration(migrations.Migration):
    dependencies = [
        ("search", "0001_embedding_models"),
        ("documents", "0008_embedding_model_from_search"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="EmbeddingModel")],
            database_operations=[],
        ),
    ]
