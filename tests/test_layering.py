"""Dependencies between raftka's folders point one way (docs/architecture.md): storage and
metadata import nothing of ours, replication builds on them, api is the broker's outer
layer, and the out-of-process tools (chaos, bench) use api as a user would; api never
imports them (the CLI finds them through entry points)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "storage": set(),
    "metadata": set(),
    "replication": {"storage", "metadata"},
    "api": {"storage", "metadata", "replication", "client"},
    "chaos": {"api", "client", "metadata"},
    "bench": {"api", "client", "metadata", "storage", "chaos"},
}


def raftka_imports(path: Path) -> set[str]:
    """The top-level raftka subpackages a module imports (`raftka.client` counts as its own)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        for module in modules:
            parts = module.split(".")
            if parts[0] == "raftka" and len(parts) > 1:
                names.add(parts[1])
    return names


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_a_folder_imports_only_the_layers_below_it(folder: str) -> None:
    for path in sorted((ROOT / folder).rglob("*.py")):
        own = "client" if path.is_relative_to(ROOT / "api" / "client") else folder
        imported = raftka_imports(path) - {own, folder}
        assert imported <= ALLOWED[folder], f"{path.relative_to(ROOT)} imports {imported}"


CLIENT_MAY_IMPORT = {"raftka.client", "raftka.metadata.errors", "raftka.api.partitioner"}


def test_the_client_imports_only_the_contract_errors_and_the_partitioner() -> None:
    """raftka.client speaks the HTTP contract only (docs/architecture.md): a user installs it
    without the broker."""
    for path in sorted((ROOT / "api" / "client").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                module = node.module
                if module.startswith("raftka"):
                    allowed = any(
                        module == m or module.startswith(m + ".") for m in CLIENT_MAY_IMPORT
                    )
                    assert allowed, f"{path.relative_to(ROOT)} imports {module}"
