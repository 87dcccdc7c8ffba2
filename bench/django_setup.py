"""Django for a benchmark script: the settings loaded against the script's own var folder, with the app's two secrets
made there first, as `manage.py kb_run` makes them for an installation (settings refuse to load without them)."""

import os

import django

from inference.config import var_dir_from_environ
from kb.platform.secret_keys import secret_files_ensure


def django_setup() -> None:
    """After the script has set KB_VAR_DIR (or left the default var/) and any other variable it needs."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
    secret_files_ensure(environ=os.environ, var_dir=var_dir_from_environ(os.environ))
    django.setup()
