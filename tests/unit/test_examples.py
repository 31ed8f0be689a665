"""Dockerfile.example and docs/examples, checked statically (Docker cannot run in CI here).

The Dockerfile rules are the hadolint-style ones that matter for a credentials-bearing app:
a pinned base, a non-root user, no secrets in ENV/ARG, dependencies in their own layer, and a
HEALTHCHECK that exercises the task role.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskcreds import resolve_endpoint

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.example"
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
AWS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        found.append((word.upper(), rest.strip()))
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def test_instructions_parser_sees_continuations() -> None:
    parsed = instructions("FROM a:1\nRUN x \\\n  && y\n# c\nUSER app\n")
    assert parsed == [("FROM", "a:1"), ("RUN", "x    && y"), ("USER", "app")]


def test_base_image_is_pinned(dockerfile: list[tuple[str, str]]) -> None:
    bases = [args.split()[0] for word, args in dockerfile if word == "FROM"]
    assert bases
    for base in bases:
        assert "@sha256:" in base or re.search(r":\d+(\.\d+)+", base), f"unpinned base {base}"
        assert not base.endswith(":latest")


def test_runs_as_non_root(dockerfile: list[tuple[str, str]]) -> None:
    last_from = max(i for i, (word, _) in enumerate(dockerfile) if word == "FROM")
    users = [args for word, args in dockerfile[last_from:] if word == "USER"]
    assert users, "no USER after the last FROM: the app would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    entry = max(i for i, (word, _) in enumerate(dockerfile) if word in ("ENTRYPOINT", "CMD"))
    assert max(i for i, (word, _) in enumerate(dockerfile) if word == "USER") < entry


def test_no_secrets_in_env_or_arg(dockerfile: list[tuple[str, str]]) -> None:
    for word, args in dockerfile:
        if word in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
            assert not [n for n in names if SECRET_NAME.search(n)], f"{word} {args}"
            assert not AWS_KEY.search(args)
    assert not AWS_KEY.search(DOCKERFILE.read_text())


def test_dependencies_in_their_own_layer(dockerfile: list[tuple[str, str]]) -> None:
    def index(predicate: Any) -> int:
        return next(i for i, item in enumerate(dockerfile) if predicate(item))

    copy_requirements = index(lambda it: it[0] == "COPY" and "requirements" in it[1])
    install = index(lambda it: it[0] == "RUN" and "pip install" in it[1])
    copy_code = index(lambda it: it[0] == "COPY" and "requirements" not in it[1])
    assert copy_requirements < install < copy_code


def test_pip_keeps_no_cache(dockerfile: list[tuple[str, str]]) -> None:
    env_text = " ".join(args for word, args in dockerfile if word == "ENV")
    for word, args in dockerfile:
        if word == "RUN" and "pip install" in args:
            assert "--no-cache-dir" in args or "PIP_NO_CACHE_DIR=1" in env_text


def test_healthcheck_uses_show_quiet(dockerfile: list[tuple[str, str]]) -> None:
    checks = [args for word, args in dockerfile if word == "HEALTHCHECK"]
    assert len(checks) == 1
    command = checks[0].split("CMD", 1)[1].strip()
    argv = json.loads(command) if command.startswith("[") else shlex.split(command)
    assert argv[-4:] == ["taskcreds", "show", "--quiet"][-4:] or argv[-3:] == [
        "taskcreds",
        "show",
        "--quiet",
    ]


def test_task_definition_names_what_ecs_requires() -> None:
    document = json.loads((ROOT / "docs/examples/task-definition.json").read_text())
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", document["taskRoleArn"])
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", document["executionRoleArn"])
    assert document["family"]
    containers = document["containerDefinitions"]
    assert containers
    for container in containers:
        assert container["name"]
        assert container["image"]
        env = {item["name"]: item["value"] for item in container.get("environment", [])}
        assert env.get("TASKCREDS_BUCKET")
        assert not [name for name in env if SECRET_NAME.search(name)]
        assert container["healthCheck"]["command"][-3:] == ["taskcreds", "show", "--quiet"]
    if "FARGATE" in document.get("requiresCompatibilities", []):
        assert document["networkMode"] == "awsvpc"
        assert document["cpu"]
        assert document["memory"]


def test_compose_file_points_the_app_at_serve_local() -> None:
    compose = yaml.safe_load((ROOT / "docs/examples/docker-compose.yml").read_text())
    services = compose["services"]
    command = services["credentials"]["command"]
    assert "serve-local" in command
    credentials_id = re.search(r"--credentials-id (\S+)", command)
    assert credentials_id is not None
    app_env = services["app"]["environment"]
    uri = app_env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    assert uri == f"http://credentials:51679/v2/credentials/{credentials_id.group(1)}"
    assert "--host 0.0.0.0" in command
    # The opt-in is what lets taskcreds use plain http to the compose service name.
    endpoint = resolve_endpoint(
        {key: str(value) for key, value in app_env.items()},
        resolver=lambda host: ["172.18.0.4"],
    )
    assert endpoint.url == uri
    with pytest.raises(ValueError, match="credentials"):
        resolve_endpoint(
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}, resolver=lambda host: ["172.18.0.4"]
        )


# -- docs/examples/kubernetes.yaml (EKS Pod Identity) ---------------------------------------------

KUBERNETES = ROOT / "docs/examples/kubernetes.yaml"


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """The documents of kubernetes.yaml by kind; each kind once."""
    documents = [d for d in yaml.safe_load_all(KUBERNETES.read_text()) if d is not None]
    kinds = [document["kind"] for document in documents]
    assert sorted(kinds) == ["Deployment", "ServiceAccount"]
    return {document["kind"]: document for document in documents}


def test_kubernetes_service_account(manifests: dict[str, dict[str, Any]]) -> None:
    account = manifests["ServiceAccount"]
    assert account["apiVersion"] == "v1"
    assert account["metadata"]["name"]
    # No IRSA annotation: Pod Identity binds the role by an association, not an annotation.
    assert "eks.amazonaws.com/role-arn" not in account["metadata"].get("annotations", {})


def test_kubernetes_deployment_has_what_a_deployment_needs(
    manifests: dict[str, dict[str, Any]],
) -> None:
    deployment = manifests["Deployment"]
    account = manifests["ServiceAccount"]
    assert deployment["apiVersion"] == "apps/v1"
    assert deployment["metadata"]["name"]
    assert deployment["metadata"]["namespace"] == account["metadata"]["namespace"]
    spec = deployment["spec"]
    selector = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    assert selector
    assert selector.items() <= labels.items()  # the selector selects the pods it makes
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    containers = pod["containers"]
    assert containers
    for container in containers:
        assert container["name"]
        assert container["image"]
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        assert env.get("TASKCREDS_BUCKET")
        assert "TASKCREDS_PREFIX" in env
        assert env.get("AWS_REGION")
        assert not [name for name in env if SECRET_NAME.search(name)]
        # Pod Identity injects the endpoint variables; a manifest that sets them breaks it.
        assert not [name for name in env if name.startswith("AWS_CONTAINER_")]
        probe = container["readinessProbe"]["exec"]["command"]
        assert probe[-3:] == ["taskcreds", "show", "--quiet"]
    assert not AWS_KEY.search(KUBERNETES.read_text())


def test_kubernetes_runs_as_the_dockerfile_user(manifests: dict[str, dict[str, Any]]) -> None:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    uid = re.search(r"--uid (\d+)", DOCKERFILE.read_text())
    assert uid is not None
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1))


def test_kubernetes_example_matches_policy_platform_eks(
    manifests: dict[str, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    """What `policy --platform eks` prints for this example fits the manifest."""
    from taskcreds.cli import main

    account = manifests["ServiceAccount"]["metadata"]
    container = manifests["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    argv = [
        "policy",
        "--platform",
        "eks",
        "--bucket",
        env["TASKCREDS_BUCKET"],
        "--prefix",
        env["TASKCREDS_PREFIX"],
        "--account",
        "123456789012",
        "--cluster",
        "prod",
        "--namespace",
        account["namespace"],
        "--service-account",
        account["name"],
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kubernetes"]["serviceAccount"]["metadata"] == {
        "name": account["name"],
        "namespace": account["namespace"],
    }
    assert printed["kubernetes"]["podSpec"]["serviceAccountName"] == account["name"]
    assert printed["kubernetes"]["podSpec"]["containers"][0]["env"] == [
        {"name": "TASKCREDS_BUCKET", "value": env["TASKCREDS_BUCKET"]},
        {"name": "TASKCREDS_PREFIX", "value": env["TASKCREDS_PREFIX"]},
    ]
