from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION kb_audit_chain_head(lock_key bigint, OUT sequence bigint, OUT entry_hash varchar)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- The lock, then the read, in one round trip. A volatile function's queries take their snapshot when they
    -- start, after the lock is held, so the read sees the link the previous holder committed; a single SELECT
    -- calling pg_advisory_xact_lock would read from a snapshot taken before it waited, and fork the chain.
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT entry.sequence, entry.entry_hash INTO sequence, entry_hash
    FROM audit_ledgerentry AS entry ORDER BY entry.sequence DESC LIMIT 1;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_query_text_trigram_indexes")]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS kb_audit_chain_head(bigint);"),
    ]
