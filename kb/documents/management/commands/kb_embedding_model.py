"""Change the embedding model: re-embed in the background while the old vectors serve, then switch."""

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from kb.documents.embedding_models import embedding_model_change_start
from kb.documents.models import EmbeddingModel
from kb.platform.actors import system_actor


class Command(BaseCommand):
    help = "Show the embedding models, or start changing to the sentence-transformers model in PATH."

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="folder of a sentence-transformers model on this machine")
        parser.add_argument("--no-wait", action="store_true", help="start the change and return at once")

    def handle(self, *args, path: str | None, no_wait: bool, **options):
        if path is None:
            for model in EmbeddingModel.objects.all():
                self.stdout.write(f"{model.state:<9} {model.name} ({model.dimensions} dimensions) {model.path}")
            return
        try:
            incoming = embedding_model_change_start(acting_user=system_actor(), path=path)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(
            f"re-embedding {incoming.progress_total} passages with {incoming.name} in the background; "
            "the current model keeps serving until the switch"
        )
        if no_wait:
            return
        with tqdm(total=incoming.progress_total, desc="re-embedding", unit="passage") as bar:
            while (incoming := EmbeddingModel.objects.get(pk=incoming.pk)).state == EmbeddingModel.State.BUILDING:
                bar.total, bar.n = incoming.progress_total, incoming.progress_done
                bar.refresh()
                time.sleep(1)
        self.stdout.write(f"{incoming.name} is now the active embedding model")
