from django.db import migrations, models


# Nullable, with no default to write: adding them rewrites no chunk. Passages ingested before stay without pages.
class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0008_embedding_model_from_search"),
    ]

    operations = [
        migrations.AddField(
            model_name="chunk",
            name="first_page",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="chunk",
            name="last_page",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
