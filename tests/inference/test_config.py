"""inference/config.py: what the serving process runs, from the same variables the web process reads."""

from inference.config import LlmSettings, llm_settings_from_env, serving_config_from_environ
from inference.llama_cpp import LlamaCppConfig


def test_a_llama_cpp_route_runs_with_the_kb_llm_settings():
    environ = {
        "KB_INFERENCE_ROUTE": "smollm2-135m=llama_cpp",
        "KB_LLM_MODEL_PATH": "/models/other.gguf",
        "KB_LLM_CONTEXT_LENGTH": "4096",
        "KB_LLM_THREADS": "3",
    }

    [entry] = serving_config_from_environ(environ).models

    assert entry.engine == LlamaCppConfig(model_path="/models/other.gguf", n_ctx=4096, n_threads=3)


def test_unset_or_empty_kb_llm_variables_keep_their_defaults():
    assert llm_settings_from_env({}) == LlmSettings()
    assert llm_settings_from_env({"KB_LLM_SEED": "", "KB_LLM_THREADS": " "}) == LlmSettings()
    assert LlmSettings().threads >= 1 and LlmSettings().seed is None


def test_booleans_read_as_django_environ_reads_them():
    for word, expected in [
        ("yes", True),
        ("on", True),
        ("1", True),
        ("2", True),
        ("false", False),
        ("0", False),
        ("no", False),
    ]:
        assert llm_settings_from_env({"KB_LLM_ENABLE_THINKING": word}).enable_thinking is expected
