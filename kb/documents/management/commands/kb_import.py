"""Import files and folders into a collection from the command line, with progress bars."""

import time
from collections.abc import Iterator
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from extract.formats import ACCEPTED_EXTENSIONS
from kb.accounts.models import User
from kb.documents.models import Collection, DocumentVersion
from kb.documents.services import upload_batch
from kb.platform.actors import SYSTEM_USERNAME


class Command(BaseCommand):
    help = "Upload files, folders (recursively) and ZIP archives into a collection, then follow their ingestion."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--collection", required=True, help="collection name")
        parser.add_argument("--user", help="acting admin (default: the first superuser); recorded in the audit log")
        parser.add_argument("--no-wait", action="store_true", help="queue the files and return at once")

    def handle(self, *args, paths: list[Path], collection: str, user: str | None, no_wait: bool, **options):
        target = Collection.objects.filter(name=collection).first()
        if target is None:
            raise CommandError(f"no collection named {collection!r}")
        acting_user = self._acting_user(user)
        files = self._files(paths)
        if not files:
            raise CommandError("no importable files found under the given paths")

        result = upload_batch(acting_user=acting_user, collection=target, files=self._opened(files))
        for reason in result.rejected:
            self.stderr.write(f"skipped {reason}")
        self.stdout.write(f"queued {len(result.accepted)} file(s), skipped {len(result.rejected)}")
        accepted = result.accepted
        if accepted and not no_wait:
            self._follow([version.pk for version in accepted])

    @staticmethod
    def _opened(paths: list[Path]) -> Iterator[File]:
        # Each file is read whole before the next is opened, so only one handle is open at a time.
        for path in tqdm(paths, desc="uploading", unit="file"):
            with path.open("rb") as handle:
                yield File(handle, name=path.name)

    def _acting_user(self, username: str | None) -> User:
        users = (
            User.objects.filter(username=username)
            if username
            else User.objects.filter(is_superuser=True).exclude(username=SYSTEM_USERNAME)
        )
        acting_user = users.order_by("pk").first()
        if acting_user is None:
            raise CommandError(f"no user {username!r}" if username else "no superuser exists; pass --user")
        return acting_user

    @staticmethod
    def _files(paths: list[Path]) -> list[Path]:
        found: list[Path] = []
        for path in paths:
            if path.is_dir():
                found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in ACCEPTED_EXTENSIONS)
            elif path.is_file():
                found.append(path)
            else:
                raise CommandError(f"{path} does not exist")
        return found

    def _follow(self, version_ids: list[int]) -> None:
        """Show ingestion as passages embedded out of passages found, until every file is ready or failed."""
        versions = DocumentVersion.objects.filter(pk__in=version_ids)
        with tqdm(desc="ingesting", unit="passage", total=0) as bar:
            while True:
                states = list(
                    versions.values(
                        "status", "progress_done", "progress_total", "failure_reason", "document__original_name"
                    )
                )
                bar.total = sum(state["progress_total"] for state in states)
                bar.n = sum(state["progress_done"] for state in states)
                finished = [s for s in states if s["status"] in {"ready", "failed"}]
                bar.set_postfix(files=f"{len(finished)}/{len(states)}")
                bar.refresh()
                if len(finished) == len(states):
                    break
                time.sleep(1)
        failed = [s for s in states if s["status"] == "failed"]
        for state in failed:
            self.stderr.write(f"failed {state['document__original_name']}: {state['failure_reason']}")
        self.stdout.write(f"ingested {len(states) - len(failed)} file(s), {len(failed)} failed")
