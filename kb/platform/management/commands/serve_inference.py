"""`manage.py serve_inference`: the model-serving process, the same as `python -m inference`."""

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from kb.platform.dotenv import environment_with_dotenv
from kb.platform.serving import serving_python


class Command(BaseCommand):
    help = (
        "Load the models of KB_INFERENCE_ROUTE and serve them on an OpenAI-compatible API on localhost; "
        "web and worker processes reach it through KB_INFERENCE_URL."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, help="default: KB_INFERENCE_PORT or 8765")

    def handle(self, *args, port: int | None, **options):
        from inference.__main__ import main

        # The serving process and its engines (vLLM's VLLM_*, Hugging Face's HF_*) read their variables from the
        # environment: the project's .env joins it here, as settings read it, for this process and the one it becomes.
        os.environ.update(environment_with_dotenv(settings.BASE_DIR / ".env"))
        if port is not None:
            os.environ["KB_INFERENCE_PORT"] = str(port)
        python = serving_python()
        if python != sys.executable:  # the route's engines live in another venv (vLLM's CPU build)
            os.execv(python, [python, "-m", "inference"])
        main()
