import importlib

from django.db import migrations

# Appends no longer lock the chain (ledger.chain_append: a link claims its sequence number or links again), so the
# function that took the lock and read the head in one round trip has no caller.
_PREVIOUS = importlib.import_module("kb.audit.migrations.0009_chain_head_function")


class Migration(migrations.Migration):
    dependencies = [("audit", "0009_chain_head_function")]

    operations = [
        migrations.RunSQL("DROP FUNCTION IF EXISTS kb_audit_chain_head(bigint);", _PREVIOUS.FUNCTION),
    ]
