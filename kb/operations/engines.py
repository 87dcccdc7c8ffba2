"""The engines as operations see them: the serving process through the inference client (which presents the key
the app's processes share, kb.platform.serving.serving_api_key), or the route a web process hosts itself."""

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from inference.engine import ChatBackend
from inference.types import EngineError
from kb.chat.generation import answer_backend


def engine_backend(*, load_here: bool) -> ChatBackend | None:
    """The serving process's client; without one (KB_INFERENCE_URL empty) the engine this process hosts, but only
    where `load_here` (a web process, which loads it at start anyway; never a worker, which would load a model)."""
    if settings.KB_INFERENCE_URL or load_here:
        return answer_backend()
    return None


@dataclass(frozen=True, kw_only=True)
class EnginesState:
    ready: bool
    # /v1/models rows (state, load, limits, load time), each with "outcomes": its requests so far by outcome.
    models: list[dict[str, Any]] = field(default_factory=list)
    gpus: list[dict[str, float]] = field(default_factory=list)  # {"gpu", "used_bytes", "total_bytes"}
    problem: str = ""  # why they could not be read


def engines_state(backend: ChatBackend) -> EnginesState:
    """Readiness (/ready), the models' state and load (/v1/models) and the figures of /metrics, read just now."""
    try:
        readiness = backend.readiness()
        models = backend.describe()
        families = {family.name: family for family in text_string_to_metric_families(backend.metrics_exposition())}
    except EngineError as error:
        return EnginesState(ready=False, problem=str(error))
    gpus: dict[str, dict[str, float]] = {}
    for figure in ("used", "total"):
        for sample in _samples(families, f"kb_inference_gpu_memory_{figure}_bytes"):
            gpus.setdefault(sample.labels["gpu"], {"gpu": sample.labels["gpu"]})[f"{figure}_bytes"] = sample.value
    outcomes: dict[str, dict[str, float]] = {}
    for sample in _samples(families, "kb_inference_requests"):
        if sample.name.endswith("_total"):
            outcomes.setdefault(sample.labels["model"], {})[sample.labels["outcome"]] = sample.value
    return EnginesState(
        ready=bool(readiness.get("ready")),
        models=[{**model, "outcomes": outcomes.get(model["id"], {})} for model in models],
        gpus=list(gpus.values()),
    )


def _samples(families: dict[str, Metric], name: str) -> list:
    return families[name].samples if name in families else []
