"""The structural gates ``make lint`` holds (issue 20): import cycles among the project's
packages, imports from a higher layer, SQL text written outside ``storage/`` and
functions over 60 lines.

It prints the counts and fails only when one has grown past its committed allowance
(``ALLOWED_CYCLES``, ``ALLOWED_SQL``): each allowance may only shrink, so a gain once made
is held. Run it as ``python -m tote.lintgate``; exit status 1 names what broke the gate.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "cluster", "domain", "kit", "storage", "tote", "transport")
#: The packages whose string literals must hold no SQL: storage/ is its one owner.
SQL_FREE = ("actors", "cluster", "domain", "kit", "tote", "transport")
#: A statement's opening words, not a lone keyword ("DELETE" the HTTP method, "Create a
#: user" a summary).
SQL_START = re.compile(
    r"\s*(SELECT\s+\S|INSERT\s+(OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b"
    r"|CREATE\s+(TABLE|INDEX|UNIQUE|VIEW|TRIGGER|TEMP)\b|PRAGMA\s+\w)",
    re.IGNORECASE,
)

#: Import cycles still allowed, each the sorted modules of one strongly connected group.
#: Only shrinks: remove a cycle here once it is broken.
ALLOWED_CYCLES: frozenset[tuple[str, ...]] = frozenset()
#: The layers, bottom first: a module imports only from its own layer or those below.
LAYERS = ("domain", "kit", "storage", "actors", "cluster", "transport", "tote")
#: Imports still allowed upward (``importer -> imported``). Only shrinks.
ALLOWED_UPWARD: frozenset[str] = frozenset()
#: SQL texts still allowed outside storage/, per module. Only shrinks.
ALLOWED_SQL: dict[str, int] = {}
MAX_LINES = 60
#: Functions still over ``MAX_LINES`` (``module:qualified.name``). Only shrinks.
ALLOWED_LONG: frozenset[str] = frozenset(
    {
        "transport.openapi:openapi_document",
        "transport.openapi_limits:schemas",
    }
)


def modules() -> dict[str, Path]:
    """Every module of the project's packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imported(tree: ast.AST, name: str, known: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports, at any depth of its body (``TYPE_CHECKING``
    imports included: a cycle hidden from the interpreter is still a cycle)."""
    is_package = known[name].name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {t for t in targets if t in known and t != name}


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports."""
    known = modules()
    return {
        name: imported(ast.parse(path.read_text(), str(path)), name, known)
        for name, path in known.items()
    }


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` reaches through its imports (itself only by a cycle)."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The groups of modules that import each other, directly or not, each sorted: the
    modules each reaches and that reach it back (a hundred modules: no need for Tarjan)."""
    reach = {node: reachable(graph, node) for node in graph}
    groups = {
        tuple(sorted({node} | {other for other in reach[node] if node in reach[other]}))
        for node in graph
        if node in reach[node]
    }
    return sorted(groups)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a module from a layer above its own, as ``importer -> imported``."""
    rank = {layer: index for index, layer in enumerate(LAYERS)}

    def layer(name: str) -> int:
        return rank[name.split(".")[0]]

    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if layer(target) > layer(name)
    )


def sql_texts(path: Path) -> list[int]:
    """The lines of ``path`` where a string literal starts as SQL (docstrings aside)."""
    return sorted(set(_sql_lines(path)))


def _sql_lines(path: Path) -> Iterator[int]:
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            text = first.value if isinstance(first, ast.Constant) else ""
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings:
                continue
            text = node.value
        else:
            continue
        if isinstance(text, str) and SQL_START.match(text):
            yield node.lineno


def sql_outside_storage() -> dict[str, list[int]]:
    """Module → the lines of its SQL texts, for the packages that must hold none."""
    found: dict[str, list[int]] = {}
    for name, path in modules().items():
        if name.split(".")[0] in SQL_FREE:
            lines = sql_texts(path)
            if lines:
                found[name] = lines
    return found


def long_functions() -> dict[str, int]:
    """``module:qualified.name`` → its lines, for each function over ``MAX_LINES``."""
    found: dict[str, int] = {}
    for name, path in modules().items():
        found.update(_long_in(ast.parse(path.read_text(), str(path)), f"{name}:"))
    return found


def _long_in(node: ast.AST, prefix: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            lines = (child.end_lineno or child.lineno) - child.lineno + 1
            if not isinstance(child, ast.ClassDef) and lines > MAX_LINES:
                found[name] = lines
            found.update(_long_in(child, f"{name}."))
    return found


def _judge(title: str, found: dict[str, int], allowed: dict[str, int]) -> list[str]:
    """Print one gate's count and return what is over its allowance; an allowance larger
    than what is found is printed as stale (lower it, to hold the gain)."""
    print(f"{title}: {sum(found.values())} (allowed {sum(allowed.values())})")
    failures = []
    for key in sorted(found.keys() | allowed.keys()):
        count, allowance = found.get(key, 0), allowed.get(key, 0)
        verdict = "OVER" if count > allowance else "stale" if count < allowance else "ok"
        print(f"  {verdict}: {key}: {count} (allowed {allowance})")
        if count > allowance:
            failures.append(f"{title}: {key}: {count}, allowed {allowance}")
    return failures


def main() -> int:
    """Print the counts; exit 1 when any is over its allowance."""
    graph = import_graph()
    found_cycles = {" <-> ".join(group): 1 for group in cycles(graph)}
    upward = dict.fromkeys(upward_imports(graph), 1)
    sql = {name: len(lines) for name, lines in sql_outside_storage().items()}
    long = {name: 1 for name in long_functions()}
    failures = [
        *_judge("import cycles", found_cycles, {" <-> ".join(g): 1 for g in ALLOWED_CYCLES}),
        *_judge("imports from a higher layer", upward, dict.fromkeys(ALLOWED_UPWARD, 1)),
        *_judge("SQL texts outside storage/", sql, ALLOWED_SQL),
        *_judge(f"functions over {MAX_LINES} lines", long, dict.fromkeys(ALLOWED_LONG, 1)),
    ]
    for failure in failures:
        print(f"lintgate: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
