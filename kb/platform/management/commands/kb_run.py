"""Start everything the app needs in one terminal; Ctrl-C stops it all."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from kb.platform.dotenv import environment_with_dotenv
from kb.platform.embedded_pg import server_ensure_for, server_stop
from kb.platform.file_modes import owner_only_folders_ensure
from kb.platform.metrics import MULTIPROCESS_DIR_VARIABLE, multiprocess_dir_emptied
from kb.platform.serving import serving_api_key, serving_python


class Command(BaseCommand):
    help = (
        "Migrate, seed the demo organisation, then run the model-serving process, the ASGI web server and a "
        "Celery worker."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.KB_HOST)
        parser.add_argument("--port", type=int, default=settings.KB_PORT)
        parser.add_argument("--no-demo", action="store_true", help="do not create the demo organisation")

    def step(self, message: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"[{time.strftime('%H:%M:%S')}] {message}"))

    def handle(self, *args, host: str, port: int, no_demo: bool, **options):
        # Everything this process and the ones it starts write (uploads, exports, logs, keys) is its owner's only.
        os.umask(0o077)
        owner_only_folders_ensure(settings.VAR_DIR, settings.MEDIA_ROOT)
        if not settings.DATABASE_URL_FROM_ENV:
            server_ensure_for(settings.DATABASES["default"])  # the database backend would at its first connection
            self.step(f"PostgreSQL 18 + pgvector (embedded) is running, data in {settings.EMBEDDED_PG_DIR}")
        self.step("applying database migrations")
        call_command("migrate", interactive=False, verbosity=0)
        if not no_demo:
            self.step("checking the demo organisation")
            call_command("kb_seed_demo")
            call_command("kb_seed_demo_evaluation")

        children: list[subprocess.Popen] = []
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        environment = environment_with_dotenv(settings.BASE_DIR / ".env")  # what settings read, .env included
        # The web and worker processes keep their figures in one folder, read together by /metrics and the
        # operations page (kb.operations.exposition); the serving process keeps its own and serves them itself.
        figures_dir = multiprocess_dir_emptied(
            Path(environment.pop(MULTIPROCESS_DIR_VARIABLE, "") or settings.VAR_DIR / "metrics")
        )
        try:
            if settings.KB_INFERENCE_URL:
                self.step(f"answers come from the model server at {settings.KB_INFERENCE_URL}")
            else:
                # Models live in one process of their own, never in web or worker processes.
                inference_url = f"http://127.0.0.1:{settings.KB_INFERENCE_PORT}"
                environment["KB_INFERENCE_URL"] = inference_url
                # Only the web and worker processes may call it: the key they share is made now, before any of
                # them starts (KB_INFERENCE_API_KEY, else KB_VAR_DIR/inference-api-key, owner-only).
                api_key = serving_api_key()
                self.step(f"starting the model server ({settings.KB_INFERENCE_ROUTE}) on {inference_url}")
                children.append(
                    subprocess.Popen([serving_python(), "-m", "inference"], env=environment, start_new_session=True)
                )
                while not stopping and not self._answers(inference_url + "/ready", api_key=api_key):
                    if any(child.poll() is not None for child in children):
                        raise SystemExit("the model server exited during start-up; see its output above")
                    time.sleep(0.5)
            app_environment = {**environment, MULTIPROCESS_DIR_VARIABLE: str(figures_dir)}
            self.step("starting the Celery worker (ingestion)")
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "kb",
                        "worker",
                        "--pool=solo",
                        "--loglevel=INFO",
                        "--hostname=ingest@%h",
                        "--beat",
                        f"--schedule={settings.VAR_DIR / 'celerybeat-schedule'}",
                    ],
                    env=app_environment,
                    start_new_session=True,
                )
            )
            self.step("starting the web server (loads the embedding model)")
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "kb.asgi:application",
                        "--host",
                        host,
                        "--port",
                        str(port),
                        "--timeout-graceful-shutdown",
                        "5",
                    ],
                    env=app_environment,
                    start_new_session=True,
                )
            )
            url = f"http://{host}:{port}/"
            while not stopping and not self._answers(url + "accounts/login/"):
                if any(child.poll() is not None for child in children):
                    raise SystemExit("a service exited during start-up; see its output above")
                time.sleep(0.5)
            if not stopping:
                self.stdout.write(self.style.SUCCESS(f"\nThe knowledge base is ready at {url}  (Ctrl-C stops it)\n"))
            while not stopping:
                if any(child.poll() is not None for child in children):
                    self.stdout.write(self.style.ERROR("a service stopped unexpectedly; shutting down"))
                    break
                time.sleep(0.5)
        finally:
            self.step("stopping")
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()
            if not settings.DATABASE_URL_FROM_ENV:
                server_stop(settings.EMBEDDED_PG_DIR)
            self.step("stopped cleanly")

    @staticmethod
    def _answers(url: str, *, api_key: str = "") -> bool:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
        try:
            with _NOT_FOLLOWING_REDIRECTS.open(request, timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError as error:
            return error.code in {301, 302}  # KB_HTTPS sends plain HTTP to HTTPS: the server is up all the same
        except OSError:
            return False


class _RedirectsAsAnswers(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs) -> None:
        return None


_NOT_FOLLOWING_REDIRECTS = urllib.request.build_opener(_RedirectsAsAnswers)
