import os

from embedding.encoders import prepare_process_for_questions

prepare_process_for_questions()

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from kb.platform.request_guard import RequestGuard  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
django_application = get_asgi_application()
# The embedded deployment serves its few static files itself; behind a reverse proxy set KB_SERVE_STATIC=false.
served = ASGIStaticFilesHandler(django_application) if settings.KB_SERVE_STATIC else django_application
# Request sizes and logins checked before Django reads any body (it reads it whole before its middleware runs).
application = RequestGuard(served)

# Load the LLM and the embedding model at start-up, not on the first user's question.
from kb.chat.generation import answer_backend  # noqa: E402
from kb.search.selectors import embed_query  # noqa: E402

answer_backend()
embed_query("warm-up")
