from celery import shared_task


@shared_task
def audit_purge_expired() -> None:
    """Run daily by the worker's scheduler; does nothing while retention is off (KB_AUDIT_RETENTION_DAYS=0)."""
    from django.conf import settings

    from kb.audit.services import audit_purge
    from kb.platform.actors import system_actor

    if settings.KB_AUDIT_RETENTION_DAYS > 0:
        audit_purge(acting_user=system_actor(), older_than_days=settings.KB_AUDIT_RETENTION_DAYS)
