#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
    if sys.argv[1:2] == ["kb_run"]:
        # The launcher's first run makes the secrets that settings read and cannot load without: before they load.
        from pathlib import Path

        from kb.platform.secret_keys import launcher_secret_files_ensure

        for name in launcher_secret_files_ensure(Path(__file__).resolve().parent):
            print(f"made {name} (first run): kept owner-only in the var folder, read back by every later run")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
