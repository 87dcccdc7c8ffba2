"""inference/config.py: what the serving process runs, from the same variables the web process reads."""

import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.config import (
    API_KEY_FILE,
    LlmSettings,
    inference_api_key,
    llm_settings_from_env,
    serving_config_from_environ,
)
from inference.llama_cpp import LlamaCppConfig
from inference.remote import RemoteConfig


def test_a_llama_cpp_route_runs_with_the_kb_llm_settings():
    environ = {
        "KB_INFERENCE_ROUTE": "smollm2-135m=llama_cpp",
        "KB_LLM_MODEL_PATH": "/models/other.gguf",
        "KB_LLM_CONTEXT_LENGTH": "4096",
        "KB_LLM_THREADS": "3",
    }

    [entry] = serving_config_from_environ(environ).models

    assert entry.engine == LlamaCppConfig(model_path="/models/other.gguf", n_ctx=4096, n_threads=3)


def test_a_remote_route_needs_the_key_its_server_asks_for():
    route = {"KB_INFERENCE_ROUTE": "qwen3.5-9b=remote", "KB_REMOTE_BASE_URL": "http://vllm-head:8000/v1"}

    for missing in ({}, {"KB_REMOTE_API_KEY": ""}, {"KB_REMOTE_API_KEY": "EMPTY"}):
        with pytest.raises(ValueError, match="set KB_REMOTE_API_KEY"):
            serving_config_from_environ(route | missing)
    [entry] = serving_config_from_environ(route | {"KB_REMOTE_API_KEY": "s3cret-key"}).models

    assert entry.engine == RemoteConfig(base_url="http://vllm-head:8000/v1", model="qwen3.5-9b", api_key="s3cret-key")


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


def test_the_api_key_is_made_once_owner_only_and_read_back_by_later_runs(tmp_path):
    var_dir = tmp_path / "var"  # not there yet: the first run makes it

    first = inference_api_key(var_dir)
    again = inference_api_key(var_dir)

    assert first == again and len(first) >= 40
    assert stat.S_IMODE((var_dir / API_KEY_FILE).stat().st_mode) == 0o600
    assert sorted(path.name for path in var_dir.iterdir()) == [API_KEY_FILE]


def test_processes_starting_together_all_get_the_one_key(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: inference_api_key(tmp_path), range(32)))

    assert keys == {(tmp_path / API_KEY_FILE).read_text().strip()}


def test_the_operators_key_wins_and_no_file_is_made(tmp_path):
    assert inference_api_key(tmp_path, given=" operator-key ") == "operator-key"
    assert not (tmp_path / API_KEY_FILE).exists()


def test_a_key_file_others_may_read_is_refused(tmp_path):
    inference_api_key(tmp_path)
    (tmp_path / API_KEY_FILE).chmod(0o644)

    with pytest.raises(PermissionError, match="chmod 600"):
        inference_api_key(tmp_path)


def test_reading_the_serving_settings_makes_no_key(tmp_path):
    config = serving_config_from_environ({"KB_VAR_DIR": str(tmp_path)})

    assert config.api_key == "" and not any(tmp_path.iterdir())


def test_the_server_answers_to_localhost_its_bound_host_and_the_configured_names():
    default = serving_config_from_environ({})
    bound = serving_config_from_environ(
        {"KB_INFERENCE_HOST": "10.0.0.5", "KB_INFERENCE_ALLOWED_HOSTS": "Models.Internal, kb-models"}
    )
    everywhere = serving_config_from_environ({"KB_INFERENCE_HOST": "0.0.0.0"})

    assert default.allowed_hosts == ("127.0.0.1", "localhost", "::1")
    assert bound.allowed_hosts == ("127.0.0.1", "localhost", "::1", "10.0.0.5", "models.internal", "kb-models")
    assert everywhere.allowed_hosts == ("127.0.0.1", "localhost", "::1")  # a wildcard is no name to call it by
