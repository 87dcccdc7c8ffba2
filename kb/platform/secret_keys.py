"""The app's own secrets: Django's SECRET_KEY (sessions, password reset links, signed values) and the audit chain's
HMAC key. Neither has a default anyone could read in the source.

Each comes from its environment variable (or .env), else from its file under KB_VAR_DIR, which the launcher makes on
its first run (`manage.py kb_run`, what `./kbctl run` ends in) and every later run reads back. Settings only read:
with neither, they refuse to load and say how to get one.
"""

from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from inference.config import var_dir_from_environ
from inference.secret_files import secret_file_ensure, secret_file_read
from kb.platform.dotenv import environment_with_dotenv

SECRET_FILES = {"DJANGO_SECRET_KEY": "django-secret-key", "KB_AUDIT_CHAIN_KEY": "audit-chain-key"}


def secret_setting(name: str, *, environ: Mapping[str, str], var_dir: Path) -> str:
    """The secret `name` (a key of SECRET_FILES) from `environ`, else from its file; what to do where neither has it."""
    if given := environ.get(name, "").strip():
        return given
    path = var_dir / SECRET_FILES[name]
    if (kept := secret_file_read(path)) is not None:
        return kept
    raise ImproperlyConfigured(
        f"{name} is not set and {path} does not exist. `./kbctl run` (manage.py kb_run) makes it on its first run "
        f"and keeps it there; otherwise set {name} in the environment or in .env: a long random value, the same for "
        f"every process of this installation (`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
    )


def secret_files_ensure(*, environ: Mapping[str, str], var_dir: Path) -> list[str]:
    """Make the file of each secret that `environ` does not give and that has none yet; the names of those made."""
    made = []
    for name, file_name in SECRET_FILES.items():
        if environ.get(name, "").strip() or (var_dir / file_name).exists():
            continue
        secret_file_ensure(var_dir / file_name)
        made.append(name)
    return made


def launcher_secret_files_ensure(base_dir: Path) -> list[str]:
    """secret_files_ensure for the environment and KB_VAR_DIR settings will read (the process's, then .env): the
    launcher's first step, before settings load, since loading them needs the secrets."""
    environ = environment_with_dotenv(base_dir / ".env")
    return secret_files_ensure(environ=environ, var_dir=var_dir_from_environ(environ))
