"""Readiness: whether the parts a process needs answer now. Each check says "ok" or, briefly, why not: the kind of
failure, never an address, a path or an error's text, as readiness answers anyone who can reach it (the Operations
page shows superusers the engines' own words)."""

from collections.abc import Callable

from celery import current_app
from django.db import DatabaseError, connection

from inference.engine import ChatBackend
from inference.types import EngineError
from kb.operations.selectors import worker_silence_limit, workers_alive

OK = "ok"
BROKER_TIMEOUT_SECONDS = 3.0


def database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as error:
        return f"unreachable ({type(error).__name__})"
    return OK


def broker_check() -> str:
    try:
        with current_app.connection_for_write() as connected:
            connected.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
            # Declaring the default queue, as a worker does, reaches the broker with every transport: virtual ones
            # (the embedded database's, Redis) open their connection only when a queue is used.
            connected.default_channel.queue_declare(queue=current_app.conf.task_default_queue)
    except Exception as error:  # kombu and its transports raise their own families of connection errors
        return f"unreachable ({type(error).__name__})"
    return OK


def serving_check(backend: ChatBackend) -> str:
    """The serving process's /ready (or the engine in this process): every model loaded."""
    try:
        readiness = backend.readiness()
    except EngineError as error:
        return f"unreachable ({type(error).__name__})"
    if readiness.get("ready"):
        return OK
    # "loading", "failed to load: <why>", "down (<why>)": the state without the why.
    states = {name: state.partition(":")[0].partition(" (")[0] for name, state in readiness.get("models", {}).items()}
    return "not ready (" + ", ".join(f"{name}: {state}" for name, state in states.items() if state != "ready") + ")"


def worker_check() -> str:
    try:
        alive = workers_alive()
    except DatabaseError as error:
        return f"unknown: the database is unreachable ({type(error).__name__})"
    if not alive:
        return f"no Celery worker has reported in the last {worker_silence_limit().seconds} s"
    return OK


def checks_run(checks: dict[str, Callable[[], str]]) -> tuple[bool, dict[str, str]]:
    results = {name: check() for name, check in checks.items()}
    return all(result == OK for result in results.values()), results
