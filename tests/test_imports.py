"""No import circles: every module imports alone in a fresh process, and the graph of imports
that run at import time (not in functions, not under TYPE_CHECKING) has no cycle.

Run as `python -m tests.test_imports MODULE…` it is the helper process of the first test.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A top-level `playground` package joins the check as soon as it exists.
PACKAGES = tuple(
    name
    for name in ("bot", "handlers", "storage", "migrations", "playground")
    if (ROOT / name / "__init__.py").is_file()
)
NOT_IMPORTABLE = {"migrations.env"}  # Alembic runs it as a script: importing it migrates

Graph = dict[str, set[str]]


# --- finding modules and their imports ----------------------------------------------------------


def project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of the packages (packages themselves included), by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        _walk(root / package, package, found)
    return found


def _walk(folder: Path, name: str, found: dict[str, Path]) -> None:
    if not (folder / "__init__.py").is_file():
        return  # data (locales, static files), not a package
    found[name] = folder / "__init__.py"
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            _walk(path, f"{name}.{path.name}", found)
        elif path.suffix == ".py" and path.stem != "__init__":
            found[f"{name}.{path.stem}"] = path


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(body: Iterable[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported.

    Those in functions run when the function is called, those under `if TYPE_CHECKING:` never;
    class bodies, `try`, `with` and other blocks run at import time, so their imports count.
    """
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from runtime_imports(node.orelse)
        else:
            for block in ("body", "handlers", "orelse", "finalbody", "cases"):
                children = getattr(node, block, None)
                if isinstance(children, list):
                    # except handlers and match cases are not statements, but have a body
                    yield from runtime_imports(children)


def _imported_modules(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: Mapping[str, Path]
) -> Iterator[str]:
    """The project modules an import statement needs executed (third-party ones are skipped).

    `from a import b` needs the module `a.b` when there is one, else `a` itself (b is a name
    defined in it); `import a.b` needs `a.b`: its parents only start, they need not finish.
    """
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names if alias.name in known)
        return
    base = node.module or ""
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in known:
            yield submodule
        elif base in known:
            yield base


def import_graph(modules: Mapping[str, Path]) -> Graph:
    """For each module, the project modules its import-time imports need."""
    graph: Graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[name] = {
            target
            for node in runtime_imports(tree.body)
            for target in _imported_modules(node, name, is_package, modules)
            if target != name
        }
    return graph


def third_party_imports(modules: Mapping[str, Path], packages: Iterable[str]) -> list[str]:
    """The modules outside the project that the project imports at import time."""
    ours = set(packages)
    names: set[str] = set()
    for path in modules.values():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in runtime_imports(tree.body):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif node.module and not node.level:
                names.add(node.module)
    return sorted(name for name in names if name.partition(".")[0] not in ours)


# --- cycles -------------------------------------------------------------------------------------


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component, as [a, b, …, a], from its smallest name."""
    components = _strongly_connected(graph)
    cycles = []
    for component in components:
        start = min(component)
        if len(component) > 1 or start in graph.get(start, ()):
            cycles.append(_shortest_cycle(graph, start, component))
    return sorted(cycles)


def _strongly_connected(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm (the graphs here are small enough for recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _shortest_cycle(graph: Mapping[str, set[str]], start: str, within: set[str]) -> list[str]:
    """Breadth first from `start` back to it, through the members of its component only."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = came_from[node]
                    return [start, *reversed(path[1:]), start]
                if target in within and target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a component but on no cycle")


# --- importing each module alone ----------------------------------------------------------------


def import_each_alone(names: list[str], preload: list[str]) -> dict[str, str]:
    """Import each module in a child forked from a process that holds none of the project's.

    The third-party modules are imported once before forking (aiogram alone takes seconds),
    so each child only runs the project's own code, starting from an empty slate. Returns the
    traceback of each module that failed ("" for those that imported).
    """
    for name in preload:
        with contextlib.suppress(Exception):  # the module that needs it reports the failure
            importlib.import_module(name)
    leaked = sorted(name for name in sys.modules if name.partition(".")[0] in PACKAGES)
    if leaked:
        raise RuntimeError(f"preloading imported project modules: {leaked}")
    results: dict[str, str] = {}
    running: dict[int, tuple[str, Path]] = {}
    with tempfile.TemporaryDirectory(prefix="import-alone-") as folder:
        for number, name in enumerate(names):
            if len(running) >= (os.cpu_count() or 1):
                _reap(running, results)
            report = Path(folder) / f"{number}.txt"
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the child: import, write what happened, leave without cleaning up
                try:
                    importlib.import_module(name)
                    outcome = ""
                except BaseException:
                    outcome = traceback.format_exc()
                report.write_text(outcome, encoding="utf-8")
                os._exit(0)
            running[pid] = (name, report)
        while running:
            _reap(running, results)
    return results


def _reap(running: dict[int, tuple[str, Path]], results: dict[str, str]) -> None:
    pid, status = os.wait()
    name, report = running.pop(pid)
    code = os.waitstatus_to_exitcode(status)
    outcome = report.read_text(encoding="utf-8") if report.exists() else ""
    results[name] = outcome if code == 0 else f"{outcome}\nthe child exited with {code}"


MODULES = project_modules(ROOT, PACKAGES)
IMPORTABLE = sorted(set(MODULES) - NOT_IMPORTABLE)


@pytest.fixture(scope="module")
def imported_alone() -> dict[str, str]:
    """Each module's outcome, from one helper process (a few seconds for all of them)."""
    arguments = {"modules": IMPORTABLE, "preload": third_party_imports(MODULES, PACKAGES)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.test_imports", json.dumps(arguments)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, str] = json.loads(done.stdout)
    return results


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks one child per module")
@pytest.mark.parametrize("module", IMPORTABLE)
def test_each_module_imports_alone(imported_alone: dict[str, str], module: str) -> None:
    assert imported_alone[module] == "", imported_alone[module]


def test_no_import_cycle_at_import_time() -> None:
    cycles = find_cycles(import_graph(MODULES))
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(cycle) for cycle in cycles)


def test_every_package_is_checked() -> None:
    assert {"bot", "handlers", "storage", "migrations"} <= set(PACKAGES)
    assert {"bot.app", "bot.poller", "storage.db", "handlers.ordering"} <= set(IMPORTABLE)


# --- the checker itself, on a made-up package ---------------------------------------------------


def _package(root: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return project_modules(root, ["pkg"])


def test_deferred_imports_and_package_reexports_are_no_cycle(tmp_path: Path) -> None:
    modules = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import a\n",
            "pkg/a.py": "from pkg.b import thing\nimport json\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.a import X\n"
                "def later():\n    from pkg.a import y\n"
                "thing = 1\n"
            ),
            "pkg/data/readme.txt": "not a package\n",
        },
    )
    graph = import_graph(modules)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": set()}
    assert find_cycles(graph) == []
    assert third_party_imports(modules, ["pkg"]) == ["json", "typing"]


def test_a_cycle_is_reported_with_its_path(tmp_path: Path) -> None:
    modules = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from .c import name\n",
            "pkg/sub/c.py": "from .. import d\n",
            "pkg/d.py": "try:\n    import pkg.e\nexcept ImportError:\n    pass\n",
            "pkg/e.py": "class E:\n    from pkg.sub import c\n",
        },
    )
    graph = import_graph(modules)
    assert graph["pkg.sub"] == {"pkg.sub.c"}
    assert find_cycles(graph) == [["pkg.d", "pkg.e", "pkg.sub.c", "pkg.d"]]


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    print(json.dumps(import_each_alone(request["modules"], request["preload"])))
