"""`extract` is plain Python: it loads no Django, no kb and no `unstructured` until needed, writes nothing to the
environment when imported. (That it imports no Django or kb, and no module of its in a circle, import-linter's
contracts check statically: tests/test_code_rules.py.)"""

import json
import subprocess
import sys
from pathlib import Path

import extract

PACKAGE = Path(extract.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_importing_every_module_loads_no_django_kb_or_unstructured_and_leaves_the_environment_alone():
    probe = (
        "import importlib, json, os, pkgutil, sys\n"
        "before = dict(os.environ)\n"
        "import extract\n"
        "names = [module.name for module in pkgutil.walk_packages(extract.__path__, 'extract.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "loaded = sorted({name.split('.')[0] for name in sys.modules} & {'django', 'kb', 'unstructured', 'spacy'})\n"
        "print(json.dumps({'modules': names, 'loaded': loaded, 'environment_unchanged': dict(os.environ) == before}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=PACKAGE.parent, capture_output=True, text=True, check=True
    )

    outcome = json.loads(result.stdout)
    assert set(outcome["modules"]) == {_module_name(path) for path in PACKAGE.rglob("*.py")} - {"extract"}
    assert outcome["loaded"] == []
    assert outcome["environment_unchanged"]
