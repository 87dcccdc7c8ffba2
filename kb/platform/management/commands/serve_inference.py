"""`manage.py serve_inference`: the model-serving process, the same as `python -m inference`."""

import os

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Load the models of KB_INFERENCE_ROUTE and serve them on an OpenAI-compatible API on localhost; "
            "web and worker processes reach it through KB_INFERENCE_URL.")

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, help="default: KB_INFERENCE_PORT or 8765")

    def handle(self, *args, port: int | None, **options):
        from inference.__main__ import main

        if port is not None:
            os.environ["KB_INFERENCE_PORT"] = str(port)
        main()
