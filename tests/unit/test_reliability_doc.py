"""docs/reliability.md names the test behind every row: each one must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
# `integration/test_fetch.py::test_x`, then `::test_y` for more in the same file; a bare
# `test_fetch.py::...` means the file already named in that folder.
_REFERENCE = re.compile(r"`(?:((?:[a-z0-9_]+/)?test_[a-z0-9_]+\.py))?::(test_[a-z0-9_]+)`")
_FILE = re.compile(r"`((?:[a-z0-9_]+/)?test_[a-z0-9_]+\.py)")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def _resolve(name: str, folders: dict[str, str]) -> Path:
    if "/" in name:
        folder, _, file = name.partition("/")
        folders[file] = folder
        return ROOT / "tests" / folder / file
    return ROOT / "tests" / folders[name] / name


def test_every_test_the_table_names_exists() -> None:
    folders: dict[str, str] = {}
    missing: list[str] = []
    checked = 0
    for line in DOC.read_text(encoding="utf-8").splitlines():
        current: Path | None = None
        for file_match in _FILE.finditer(line):
            path = _resolve(file_match.group(1), folders)
            assert path.exists(), f"docs/reliability.md names a missing file: {path}"
        for match in _REFERENCE.finditer(line):
            if match.group(1):
                current = _resolve(match.group(1), folders)
            assert current is not None, f"no file before ::{match.group(2)} in: {line}"
            checked += 1
            if match.group(2) not in _test_names(current):
                missing.append(f"{current.relative_to(ROOT)}::{match.group(2)}")
    assert checked > 50
    assert missing == []
