"""`manage.py kb_restore ARCHIVE`: restore what `kb_backup` archived (kb/platform/backup.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from kb.platform.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a kb_backup archive into this deployment's database and storage, after checking every checksum. "
        "A database that has tables, or a storage holding files, is refused unless --replace."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path)
        parser.add_argument(
            "--replace",
            action="store_true",
            help="drop the database's tables and restore the archive's in their place (one transaction), and "
            "overwrite stored files of the same names; stop the web, worker and scheduler processes first",
        )

    def handle(self, *args, archive: Path, replace: bool, verbosity: int, **options):
        if not archive.is_file():
            raise CommandError(f"{archive} is not a file")
        try:
            summary = backup_restore(archive=archive, replace=replace, show_progress=verbosity > 0)
        except BackupError as error:
            raise CommandError(str(error)) from None
        for warning in summary.warnings:
            self.stderr.write(self.style.WARNING(warning))
        self.stdout.write(
            self.style.SUCCESS(f"restored {summary.tables} table(s) and {summary.files} file(s) from {archive}")
        )
        if summary.files_not_in_archive:
            self.stdout.write(f"{summary.files_not_in_archive} stored file(s) not in the archive were left in place")
        if summary.pending_migrations:
            self.stdout.write(
                f"the archive predates {summary.pending_migrations} migration(s) of this code: "
                "run `manage.py migrate` before starting the application"
            )
