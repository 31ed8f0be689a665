"""docs/examples/docker-compose.yml, checked statically against what it references (no Docker).

Every build context and Dockerfile exists, every file the Dockerfile copies exists in its context,
the wheel comes from where `make dist` puts it, a service that runs another program than the
image's ENTRYPOINT replaces it, the app waits for a healthy credentials service, the AWS config is
mounted in the home of the image's user, and serve-local's arguments parse and match the app's
URL. The copy in docs/local-development.md must say the same.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from taskcreds.cli import serve_local

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docs" / "examples" / "docker-compose.yml"
PAGE = ROOT / "docs" / "local-development.md"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuations joined, comments and blank lines dropped."""
    found = []
    for raw in re.sub(r"\\\n", " ", text).splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def argv(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else list(value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def context_of(service: dict[str, Any]) -> Path:
    build = service["build"]
    return (COMPOSE.parent / (build if isinstance(build, str) else build["context"])).resolve()


def dockerfile_of(service: dict[str, Any]) -> Path:
    build = service["build"]
    name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return (context_of(service) / name).resolve()


def image(service: dict[str, Any]) -> list[tuple[str, str]]:
    return instructions(dockerfile_of(service).read_text())


def user_home(dockerfile: list[tuple[str, str]]) -> str:
    """The home directory of the image's final USER, from the useradd that made it."""
    user = [args for word, args in dockerfile if word == "USER"][-1].split(":")[0]
    for word, args in dockerfile:
        if word == "RUN" and "useradd" in args:
            command = shlex.split(args.split("useradd", 1)[1].split("&&")[0])
            if command[-1] == user:
                return command[command.index("--home-dir") + 1]
    raise AssertionError(f"no useradd for USER {user}")


def test_every_service_builds_from_what_exists(services: dict[str, Any]) -> None:
    assert set(services) == {"credentials", "app"}
    for name, service in services.items():
        assert context_of(service).is_dir(), name
        assert dockerfile_of(service).is_file(), name


def test_every_file_the_dockerfile_copies_is_in_the_context(services: dict[str, Any]) -> None:
    for name, service in services.items():
        copies = [args for word, args in image(service) if word in ("COPY", "ADD")]
        assert copies, name
        for args in copies:
            parts = [part for part in shlex.split(args) if not part.startswith("--")]
            assert not args.startswith("--from"), f"{name}: COPY --from is not checked: {args}"
            for source in parts[:-1]:
                assert (context_of(service) / source).exists(), f"{name}: COPY {source}"


def test_the_wheel_comes_from_make_dist(services: dict[str, Any]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^dist:", makefile, re.M)
    assert "--outdir dist" in makefile
    for name, service in services.items():
        mounts = [args for word, args in image(service) if word == "RUN" and "--mount=" in args]
        named = set()
        for args in mounts:
            options = dict(
                item.split("=", 1) for item in args.split()[0].removeprefix("--mount=").split(",")
            )
            named.add(options["from"])
            assert "/wheels/taskcreds-*.whl" in args
        contexts = service["build"].get("additional_contexts", {})
        assert named == set(contexts) == {"wheels"}, name
        assert (COMPOSE.parent / contexts["wheels"]).resolve() == ROOT / "dist", name


def test_a_service_running_another_program_replaces_the_entrypoint(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        entrypoints = [exec_form(args) for word, args in image(service) if word == "ENTRYPOINT"]
        if not entrypoints or "command" not in service:
            continue
        # The image's ENTRYPOINT (the app) takes no arguments: a command must bring its program.
        assert "entrypoint" in service, f"{name}: command would become the app's arguments"
        assert argv(service["entrypoint"]) != entrypoints[-1]
    credentials = services["credentials"]
    program = argv(credentials["entrypoint"]) + argv(credentials["command"])
    assert program[:4] == ["python", "-m", "taskcreds", "serve-local"]
    assert "command" not in services["app"]  # the app runs the image's ENTRYPOINT
    assert "entrypoint" not in services["app"]


def serve_local_args(services: dict[str, Any]) -> argparse.Namespace:
    credentials = services["credentials"]
    program = argv(credentials["entrypoint"]) + argv(credentials["command"])
    parser = argparse.ArgumentParser()
    serve_local.add_arguments(parser)
    return parser.parse_args(program[4:])


def test_serve_local_answers_the_url_the_app_asks(services: dict[str, Any]) -> None:
    args = serve_local_args(services)
    assert args.host == "0.0.0.0"  # the container's interface; the port is not published
    assert "credentials" in args.allow_host
    assert not args.compat_paths
    assert "ports" not in services["credentials"]
    url = services["app"]["environment"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    parts = urlsplit(url)
    assert (parts.hostname, parts.port) == ("credentials", args.port)
    assert parts.path == f"/v2/credentials/{args.credentials_id}"
    assert services["app"]["environment"]["TASKCREDS_ALLOWED_HOSTS"] == "credentials"


def test_the_app_waits_for_a_healthy_endpoint(services: dict[str, Any]) -> None:
    args = serve_local_args(services)
    check = services["credentials"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"
    expected = f"http://127.0.0.1:{args.port}/v2/credentials/{args.credentials_id}"
    assert f"AWS_CONTAINER_CREDENTIALS_FULL_URI={expected} " in check[1]
    assert "python -m taskcreds show --quiet" in check[1]
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in services["credentials"]["environment"]
    assert services["app"]["depends_on"] == {"credentials": {"condition": "service_healthy"}}


def test_the_aws_config_is_mounted_in_the_users_home(services: dict[str, Any]) -> None:
    credentials = services["credentials"]
    home = user_home(image(credentials))
    assert home == "/app"
    mounts = [volume for volume in credentials["volumes"] if volume.startswith("~/.aws:")]
    assert mounts == [f"~/.aws:{home}/.aws:ro"]
    assert "user" not in credentials  # else the home would be that user's
    assert not [v for v in services["app"].get("volumes", []) if ".aws" in v]  # the app: no keys


def test_the_page_shows_this_file(compose: dict[str, Any]) -> None:
    text = PAGE.read_text()
    section = text[text.index("## Docker Compose") :]
    blocks = re.findall(r"^```yaml\n(.*?)^```", section, re.M | re.S)
    shown = [
        yaml.safe_load(block) for block in blocks if block.lstrip("#\n ").find("services:") >= 0
    ]
    full = [block for block in shown if isinstance(block, dict) and "services" in block]
    assert full, "the Docker Compose section shows no complete compose file"
    assert full[0] == compose
    assert "docs/examples/docker-compose.yml" in section
    assert "make dist" in section
