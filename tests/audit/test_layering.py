"""The audit app is the lowest layer of the apps: every other app records into it, it imports none of them."""

import ast
from pathlib import Path

import kb.audit

APPS_ABOVE_AUDIT = ("kb.accounts", "kb.documents", "kb.search", "kb.chat")


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_no_audit_module_imports_an_app_above_it():
    audit_dir = Path(kb.audit.__file__).parent
    offending = {
        f"{path.relative_to(audit_dir.parent.parent)}: {module}"
        for path in sorted(audit_dir.rglob("*.py"))
        for module in _imported_modules(path)
        if module.startswith(tuple(f"{app}." for app in APPS_ABOVE_AUDIT)) or module in APPS_ABOVE_AUDIT
    }
    assert not offending
