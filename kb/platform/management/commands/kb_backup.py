"""`manage.py kb_backup [ARCHIVE]`: the database and the uploaded files in one archive (kb/platform/backup.py)."""

from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from kb.platform.backup import BackupError, backup_create
from kb.platform.secret_keys import SECRET_FILES


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump) and every uploaded file into one tar archive with a manifest of checksums; "
        "`manage.py kb_restore ARCHIVE` restores it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "archive", nargs="?", type=Path, help="the archive to write (default: kb-backup-DATE-TIME.tar here)"
        )

    def handle(self, *args, archive: Path | None, verbosity: int, **options):
        archive = (archive or Path(f"kb-backup-{datetime.now():%Y%m%d-%H%M%S}.tar")).resolve()
        try:
            summary = backup_create(archive=archive, show_progress=verbosity > 0)
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"backed up the database ({filesizeformat(summary.database_bytes)}) and {summary.files} file(s) "
                f"({filesizeformat(summary.file_bytes)}) into {summary.archive}"
            )
        )
        key_file = settings.VAR_DIR / SECRET_FILES["KB_AUDIT_CHAIN_KEY"]
        self.stdout.write(
            f"Keep KB_AUDIT_CHAIN_KEY (set in the environment, or the file {key_file} "
            "that kb_run made; the archive holds neither) with the archive, elsewhere: the audit records of a "
            "restore verify only with it."
        )
