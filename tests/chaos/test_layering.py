"""The chaos history, checker and report stay pure: no raftka.api, no network, no clock
in the checker (the CLI in api imports chaos, never the reverse)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import raftka.chaos

CHAOS = Path(raftka.chaos.__file__).parent
FORBIDDEN = {
    "history.py": {"raftka.api", "socket", "http", "aiohttp"},
    "checker.py": {"raftka.api", "socket", "http", "aiohttp", "time", "pathlib", "random"},
    "report.py": {"raftka.api", "socket", "http", "aiohttp", "urllib"},
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", FORBIDDEN)
def test_a_pure_chaos_module_imports_nothing_forbidden(module: str) -> None:
    for name in imported(CHAOS / module):
        assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN[module]), name
