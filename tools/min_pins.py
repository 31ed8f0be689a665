"""The lowest versions pyproject.toml allows, as exact pins: what `make test-min` installs.

    python tools/min_pins.py [--extra NAME ...]

prints one pip constraint per line (``requests==2.31``) for every runtime dependency and for
the packages of each named extra; a self-reference such as ``taskcreds[demo]`` is followed.
Every such requirement must name a lower bound with ``>=``: one without fails here, so a
dependency cannot slip in untested. Extras of a dependency (``botocore[crt]``) are not part of
a constraint: pip takes them from the project's own requirement, and the extra's own pins
(awscrt for botocore[crt]) come with the pinned version.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def load(path: Path = PYPROJECT) -> dict[str, Any]:
    with path.open("rb") as handle:
        project: dict[str, Any] = tomllib.load(handle)["project"]
    return project


def requirements(project: dict[str, Any], extras: Iterable[str] = ()) -> list[Requirement]:
    """The runtime requirements and those of ``extras``, self-references followed."""
    name = canonicalize_name(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: list[Requirement] = []
    seen: set[str] = set()
    texts: list[str] = list(project.get("dependencies", []))
    pending: list[str] = list(extras)
    while texts or pending:
        if texts:
            requirement = Requirement(texts.pop(0))
            if canonicalize_name(requirement.name) == name:
                pending += sorted(requirement.extras)
            else:
                found.append(requirement)
            continue
        extra = pending.pop(0)
        if extra not in optional:
            raise SystemExit(f"pyproject.toml has no extra {extra!r}")
        if extra not in seen:
            seen.add(extra)
            texts += optional[extra]
    return found


def lower_bound(requirement: Requirement) -> str:
    bounds = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    if len(bounds) != 1:
        raise SystemExit(f"{requirement}: needs exactly one '>=' lower bound for make test-min")
    return bounds[0]


def pins(project: dict[str, Any], extras: Iterable[str] = ()) -> list[str]:
    lines: dict[str, str] = {}
    for requirement in requirements(project, extras):
        pin = f"{canonicalize_name(requirement.name)}=={lower_bound(requirement)}"
        if requirement.marker is not None:
            pin += f"; {requirement.marker}"
        key = canonicalize_name(requirement.name)
        if lines.setdefault(key, pin) != pin:
            raise SystemExit(f"{requirement.name}: two different lower bounds in pyproject.toml")
    return list(lines.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=[], help="also pin this extra")
    args = parser.parse_args(argv)
    sys.stdout.write("".join(f"{line}\n" for line in pins(load(), args.extra)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
