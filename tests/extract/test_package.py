"""`extract` is plain Python: it loads no Django, no kb and no `unstructured` until needed, writes nothing to the
environment when imported, and its modules import each other without a cycle."""

import ast
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


def test_the_modules_of_extract_import_each_other_without_a_cycle():
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    imports: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):  # function-level (lazy) imports count too
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        imports[name] = {target for target in targets if target in modules and target != name}

    def cycle_from(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        for target in sorted(imports[name]):
            if found := cycle_from(target, [*path, name]):
                return found
        return None

    assert imports["extract.parsing"] >= {"extract.formats", "extract.office", "extract.types"}  # the probe sees edges
    assert [cycle for name in imports if (cycle := cycle_from(name, []))] == []
