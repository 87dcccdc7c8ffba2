import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from kb.operations.engines import engine_backend, engines_state
from kb.operations.exposition import metrics_exposition
from kb.operations.health import OK, broker_check, checks_run, database_check, serving_check, worker_check
from kb.operations.selectors import HOURS_SHOWN, operations_charts, workers_alive, workers_seen
from kb.platform.bearer import bearer_token
from kb.platform.views import render_page

DEFAULT_HOURS = 6


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the web process answers. Nothing else is asked, so a slow database never gets it restarted."""
    return JsonResponse({"status": "alive"})


def _web_checks() -> dict:
    return {
        "database": database_check,
        "broker": broker_check,
        "serving": lambda: serving_check(engine_backend(load_here=True)),
    }


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness of a web process: the database, the Celery broker and the engines answer. 503 names what does not."""
    ready, checks = checks_run(_web_checks())
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)


@require_GET
def worker_readyz(request: HttpRequest) -> JsonResponse:
    """Readiness of the ingestion workers: one at least has sent its heartbeat lately (kb.operations.tasks). Anyone
    may ask, so it says how many, not their host names (the Operations page names them)."""
    ready, checks = checks_run({"worker": worker_check})
    workers = len(workers_alive()) if ready else 0
    return JsonResponse({"ready": ready, "checks": checks, "workers": workers}, status=200 if ready else 503)


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's scrape, for whoever holds KB_METRICS_TOKEN (Authorization: Bearer); off while it is unset."""
    token = settings.KB_METRICS_TOKEN
    if not token:
        return _plain("Metrics are off: set KB_METRICS_TOKEN and scrape with Authorization: Bearer <token>.", 403)
    presented = bearer_token(request.headers.get("Authorization", ""))
    if not presented or not hmac.compare_digest(presented.encode(), token.encode()):
        response = _plain("A valid token is required: Authorization: Bearer <KB_METRICS_TOKEN>.", 401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


@login_required
@require_GET
def operations_page(request: HttpRequest) -> HttpResponse:
    """The last hours' figures as charts, the engines' and workers' state, and readiness, for superusers."""
    if not request.user.is_superuser:
        raise PermissionDenied("Only superusers see the operations page.")
    hours = request.GET.get("hours", str(DEFAULT_HOURS))
    if hours not in {str(choice) for choice in HOURS_SHOWN}:
        return _plain(f"Choose one of {', '.join(map(str, HOURS_SHOWN))} hours.", 400)
    alive = {worker.pk for worker in workers_alive()}
    ready, checks = checks_run({**_web_checks(), "worker": worker_check})
    context = {
        "hours": int(hours),
        "hours_shown": HOURS_SHOWN,
        "charts": operations_charts(hours=int(hours)),
        "engines": engines_state(engine_backend(load_here=True)),
        "workers": [(worker, worker.pk in alive) for worker in workers_seen()],
        "ready": ready,
        "checks": checks,
        "ok": OK,
    }
    return render_page(request, "operations/page.html", partial="figures", context=context)
