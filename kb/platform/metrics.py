"""The app's operating figures in Prometheus form, kept by the process they happen in (a web or a worker process).

Where several processes run (`kb_run`: a web server and a Celery worker; uvicorn with --workers), each writes its
figures into the folder named by PROMETHEUS_MULTIPROC_DIR, set before the process starts, and any of them reads all
of them together (prometheus_client's multiprocess mode: kb.operations.exposition). Without it, a process knows its
own figures only. Labels hold names the code chose (a route's name, an outcome), never what a user typed.
"""

from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram

# Read by prometheus_client when it is first imported: it must be in a process's environment before it starts.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The methods a label may name; any other is counted as "other", so a client cannot invent label values.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUEST_SECONDS = Histogram(
    "kb_http_request_duration_seconds",
    "From a request reaching Django to its response (a stream: to its first byte), by route name",
    ["view", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_PROGRESS = Gauge(
    "kb_http_requests_in_progress",
    "Requests being answered now, streams until their last byte",
    multiprocess_mode="livesum",
)
RETRIEVAL_SECONDS = Histogram(
    "kb_retrieval_seconds",
    "Searching the passages a question is answered from (dense and keyword rankings, fusion)",
    buckets=LATENCY_BUCKETS,
)
ANSWER_TIME_TO_FIRST_TOKEN_SECONDS = Histogram(
    "kb_answer_time_to_first_token_seconds",
    "From the start of answering (retrieval included) to the model's first token, as the asker waits for it",
    buckets=LATENCY_BUCKETS,
)
# Output tokens/s is the ratio of these two: the tokens after each answer's first, over the time they took.
ANSWER_OUTPUT_TOKENS = Counter("kb_answer_output_tokens", "Tokens generated for answers after their first token")
ANSWER_GENERATION_SECONDS = Counter(
    "kb_answer_generation_seconds", "Time answers spent generating after their first token"
)
# answered, not_in_sources (the model was not asked), stopped, busy (every model busy: the asker may retry),
# engine_error (the model failed mid-answer), failed (anything else), client_gone.
ANSWERS = Counter("kb_answers", "Answers streamed, by how they ended", ["outcome"])
ASKS_REFUSED_BUSY = Counter(
    "kb_asks_refused_busy", "Questions refused at once with 503: every model busy, or none ready"
)
INGESTED_DOCUMENTS = Counter("kb_ingested_documents", "Document versions ingested, by outcome", ["outcome"])
INGESTED_CHUNKS = Counter("kb_ingested_chunks", "Passages published by ingestion")
INGESTION_SECONDS = Histogram(
    "kb_ingestion_seconds",
    "Parsing, chunking, embedding and publishing one document version",
    buckets=(0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0),
)


def http_method_label(method: str | None) -> str:
    return method if method in HTTP_METHODS else "other"


def multiprocess_dir_emptied(directory: Path) -> Path:
    """The figures folder for processes about to start, without the files of earlier ones: counters of a deployment
    count from its start (prometheus_client's rule for the folder)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        path.unlink()
    return directory
