from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("evaluation", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="evaluationrun",
            name="answers",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="evaluationresult",
            name="answer",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="evaluationresult",
            name="answer_citations",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="evaluationresult",
            name="answer_cites_expected",
            field=models.BooleanField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="evaluationresult",
            name="answer_facts",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="evaluationresult",
            name="answer_abstained",
            field=models.BooleanField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="evaluationresult",
            name="answer_error",
            field=models.TextField(blank=True),
        ),
    ]
