"""kb/settings.py: importing it names things and starts nothing; the KB_LLM_* variables have one reader."""

import dataclasses
import json
import os
import re
import stat
import subprocess
import sys

import pytest

from inference.config import LlmSettings, llm_settings_from_env
from kb.platform.dotenv import environment_with_dotenv
from kb.platform.secret_keys import SECRET_FILES, secret_files_ensure, secret_setting
from tests.conftest import PROJECT_ROOT


def _run_python(code: str, environment: dict[str, str]) -> dict:
    finished = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout.strip().splitlines()[-1])


def _environment(**variables: str) -> dict[str, str]:
    """This process's environment without the variables that would point settings elsewhere, plus `variables`."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KB_LLM_") and key not in {"DATABASE_URL", "CELERY_BROKER_URL"}
    }
    return {**kept, "DJANGO_SETTINGS_MODULE": "kb.settings", **variables}


def test_importing_settings_with_the_embedded_database_starts_nothing_and_writes_no_environment(tmp_path):
    var_dir = tmp_path / "var"
    report = _run_python(
        "import json, os, threading\n"
        "before = dict(os.environ)\n"
        "import kb.settings as settings\n"
        "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], 'threads': threading.active_count(),\n"
        "                  'changed': sorted(key for key in {*before, *os.environ}\n"
        "                                    if before.get(key) != os.environ.get(key))}))",
        _environment(KB_VAR_DIR=str(var_dir), DATABASE_URL=""),
    )

    assert report == {"engine": "kb.platform.embedded_pg", "threads": 1, "changed": []}
    assert not var_dir.exists()  # no data folder, no postmaster.pid, no runtime folder: no server


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {
            "KB_LLM_MODEL_PATH": "/models/other.gguf",
            "KB_LLM_CONTEXT_LENGTH": "4096",
            "KB_LLM_THREADS": "3",
            "KB_LLM_TEMPERATURE": "1.0",
            "KB_LLM_TOP_P": "0.95",
            "KB_LLM_TOP_K": "20",
            "KB_LLM_MAX_TOKENS": "2048",
            "KB_LLM_REPETITION_PENALTY": "1.0",
            "KB_LLM_SEED": "11",
            "KB_LLM_ENABLE_THINKING": "yes",
        },
        {"KB_LLM_SEED": "", "KB_LLM_THREADS": "", "KB_LLM_ENABLE_THINKING": "0"},
    ],
    ids=["defaults", "all-set", "empty-values"],
)
def test_llm_settings_are_what_inference_config_reads_from_the_same_environment(variables):
    environment = _environment(DATABASE_URL="postgres://unused@/unused", **variables)
    from_settings = _run_python(
        "import dataclasses, json\nimport kb.settings as settings\n"
        "print(json.dumps(dataclasses.asdict(settings.KB_LLM)))",
        environment,
    )

    # settings read the project's .env too, under the environment, as llm_settings_from_env is given it
    expected = llm_settings_from_env(environment_with_dotenv(PROJECT_ROOT / ".env", environment))
    assert from_settings == dataclasses.asdict(expected)
    if not variables:
        assert from_settings == dataclasses.asdict(LlmSettings())


def _without_secrets(**variables: str) -> dict[str, str]:
    environment = {key: value for key, value in _environment().items() if key not in SECRET_FILES}
    return {**environment, "DATABASE_URL": "postgres://unused@/unused", **variables}


def _settings_secrets(environment: dict[str, str]) -> dict:
    return _run_python(
        "import json\nimport kb.settings as settings\n"
        "print(json.dumps({'secret': settings.SECRET_KEY, 'chain': settings.KB_AUDIT_CHAIN_KEY}))",
        environment,
    )


def test_without_secrets_settings_refuse_to_load_say_how_and_make_nothing(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-c", "import kb.settings"],
        cwd=PROJECT_ROOT,
        env=_without_secrets(KB_VAR_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in finished.stderr
    assert "`./kbctl run` (manage.py kb_run) makes it on its first run" in finished.stderr
    assert not any(tmp_path.iterdir())


def test_the_launchers_secrets_are_made_once_owner_only_and_read_by_settings(tmp_path):
    environment = _without_secrets(KB_VAR_DIR=str(tmp_path))

    made = secret_files_ensure(environ=environment, var_dir=tmp_path)
    again = secret_files_ensure(environ=environment, var_dir=tmp_path)
    read = _settings_secrets(environment)

    assert made == ["DJANGO_SECRET_KEY", "KB_AUDIT_CHAIN_KEY"] and again == []
    files = {name: tmp_path / file_name for name, file_name in SECRET_FILES.items()}
    assert {stat.S_IMODE(path.stat().st_mode) for path in files.values()} == {0o600}
    assert read == {
        "secret": files["DJANGO_SECRET_KEY"].read_text().strip(),
        "chain": files["KB_AUDIT_CHAIN_KEY"].read_text().strip(),
    }
    assert read["secret"] != read["chain"] and len(read["secret"]) >= 50
    assert _settings_secrets(environment) == read  # kept


def test_the_environment_wins_and_the_chain_key_never_falls_back_to_the_secret_key(tmp_path):
    secret_files_ensure(environ={}, var_dir=tmp_path)
    kept_chain_key = (tmp_path / SECRET_FILES["KB_AUDIT_CHAIN_KEY"]).read_text().strip()

    read = _settings_secrets(_without_secrets(KB_VAR_DIR=str(tmp_path), DJANGO_SECRET_KEY="from-the-environment"))

    assert read == {"secret": "from-the-environment", "chain": kept_chain_key}
    assert secret_files_ensure(environ={"KB_AUDIT_CHAIN_KEY": "given"}, var_dir=tmp_path / "other") == [
        "DJANGO_SECRET_KEY"
    ]
    assert not (tmp_path / "other" / SECRET_FILES["KB_AUDIT_CHAIN_KEY"]).exists()


def test_a_secret_file_others_may_read_is_refused(tmp_path):
    secret_files_ensure(environ={}, var_dir=tmp_path)
    (tmp_path / SECRET_FILES["DJANGO_SECRET_KEY"]).chmod(0o644)

    with pytest.raises(PermissionError, match="chmod 600"):
        secret_setting("DJANGO_SECRET_KEY", environ={}, var_dir=tmp_path)


def _deploy_check(var_dir, **variables: str) -> subprocess.CompletedProcess:
    # The browser tests' conftest lets this test process call the ORM beside Playwright's event loop; a deployment
    # never sets that, and the deploy check rightly refuses it.
    environment = _without_secrets(KB_VAR_DIR=str(var_dir), **variables)
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deploy_check_is_clean_with_the_production_settings_and_names_what_plain_http_lacks(tmp_path):
    secret_files_ensure(environ={}, var_dir=tmp_path)  # the secrets as the launcher makes them
    production = _deploy_check(
        tmp_path, KB_HTTPS="true", KB_TRUST_PROXY_TLS_HEADER="true", DJANGO_ALLOWED_HOSTS="kb.intranet.example"
    )
    plain_http = _deploy_check(tmp_path, DJANGO_ALLOWED_HOSTS="kb.intranet.example")

    assert production.returncode == 0, production.stderr
    assert "System check identified no issues" in production.stdout
    assert plain_http.returncode != 0
    assert {"security.W004", "security.W008", "security.W012", "security.W016"} <= set(
        re.findall(r"security\.W\d+", plain_http.stderr)
    )


def test_production_settings_come_from_the_environment():
    def read(**variables: str) -> dict:
        return _run_python(
            "import json\nimport kb.settings as s\nprint(json.dumps({'secure': [s.SESSION_COOKIE_SECURE, "
            "s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT], 'hsts': s.SECURE_HSTS_SECONDS, "
            "'proxy': s.SECURE_PROXY_SSL_HEADER, 'session': s.SESSION_COOKIE_AGE}))",
            _environment(DATABASE_URL="postgres://unused@/unused", **variables),
        )

    assert read() == {"secure": [False, False, False], "hsts": 0, "proxy": None, "session": 8 * 3600}
    assert read(KB_HTTPS="true", KB_TRUST_PROXY_TLS_HEADER="true", KB_SESSION_HOURS="2") == {
        "secure": [True, True, True],
        "hsts": 365 * 24 * 3600,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "session": 2 * 3600,
    }
