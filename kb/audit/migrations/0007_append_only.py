from django.db import migrations

AUDIT_TABLES = (
    "audit_auditevent",
    "audit_queryrecord",
    "audit_querypassage",
    "audit_queryfeedback",
    "audit_ledgerentry",
)

FUNCTION = """
CREATE OR REPLACE FUNCTION kb_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Rows leave only through the retention purge, which says so for its own transaction (SET LOCAL).
    IF TG_OP = 'DELETE' AND current_setting('kb.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit records are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def _triggers(create: bool) -> str:
    statements = []
    for table in AUDIT_TABLES:
        statements.append(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
        if create:
            statements.append(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION kb_audit_append_only();"
            )
    return "\n".join(statements)


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_ledger_feedback_query_scope")]

    operations = [
        migrations.RunSQL(
            FUNCTION + _triggers(create=True),
            _triggers(create=False) + "DROP FUNCTION IF EXISTS kb_audit_append_only();",
        ),
    ]
