"""The layers of DESIGN's layout: handlers never reach into storage or hold a session."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_handlers_import_no_storage_and_no_session() -> None:
    offenders = {}
    for path in sorted((ROOT / "handlers").glob("*.py")):
        modules = _imported_modules(path)
        bad = sorted(
            name
            for name in modules
            if name == "storage" or name.startswith(("storage.", "sqlalchemy"))
        )
        if bad or "AsyncSession" in path.read_text(encoding="utf-8"):
            offenders[path.name] = bad or ["AsyncSession"]
    assert not offenders, f"handlers must call a service instead: {offenders}"


def test_the_checker_sees_a_storage_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from storage.orders import get_order\n")
    assert "storage.orders" in _imported_modules(sample)
