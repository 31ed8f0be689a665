"""Runs inside a private network namespace (``unshare -n``): the container's view of the world.

Puts 169.254.170.2 and 169.254.170.23 on the namespace's own loopback, starts an endpoint on
port 80 (either ``taskcreds serve-local`` or an in-process AgentServer with faults), runs the
commands given in a JSON plan with a clean environment, and prints one JSON report. Nothing here
can reach the machine's real network: the namespace has only its loopback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from taskcreds.credentials import Credentials
from taskcreds.local import AgentServer, Faults, RotatingSource, StaticSource

ECS_HOST = "169.254.170.2"
EKS_HOST = "169.254.170.23"


def main() -> int:
    plan: dict[str, Any] = json.loads(sys.argv[1])
    _setup_loopback()
    report: dict[str, Any] = {"runs": [], "requests": []}
    server = _start_endpoint(plan)
    try:
        for step in plan["commands"]:
            if "write_file" in step:
                with open(step["write_file"], "w", encoding="utf-8") as handle:
                    handle.write(step["content"])
                continue
            report["runs"].append(_run(step["argv"], step.get("env", {}), step.get("timeout", 30)))
    finally:
        report["requests"] = _stop_endpoint(server)
    print(json.dumps(report))
    return 0


def _setup_loopback() -> None:
    for command in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", f"{ECS_HOST}/32", "dev", "lo"],
        ["ip", "addr", "add", f"{EKS_HOST}/32", "dev", "lo"],
    ):
        subprocess.run(command, check=True)


def _start_endpoint(plan: dict[str, Any]) -> Any:
    endpoint = plan.get("endpoint")
    if endpoint is None:
        return None  # "agent down": nothing listens
    host = endpoint.get("host", ECS_HOST)
    if endpoint["kind"] == "serve-local":
        argv = [sys.executable, "-m", "taskcreds", "serve-local", "--host", host, "--port", "80"]
        process = subprocess.Popen(
            [*argv, *endpoint["args"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _wait_for_port(host, 80)
        return process
    server = AgentServer(
        _source(endpoint),
        host=host,
        port=80,
        credentials_id=endpoint.get("credentials_id"),
        faults=Faults(**_decoded_faults(endpoint.get("faults", {}))),
        pod_identity_token_file=endpoint.get("pod_identity_token_file"),
        include_role_arn=endpoint.get("include_role_arn", True),
        include_account_id=endpoint.get("include_account_id", False),
    )
    return server.start()


def _source(endpoint: dict[str, Any]) -> Any:
    role_arn = endpoint.get("role_arn", "arn:aws:iam::123456789012:role/AppA")
    canary = endpoint.get("canary")
    if canary is None:
        return RotatingSource(role_arn=role_arn, lifetime=endpoint.get("lifetime", 3600.0))
    expiration = datetime.now(timezone.utc) + timedelta(hours=6)
    return StaticSource(
        Credentials(canary["key"], canary["secret"], canary["token"], expiration, role_arn)
    )


def _decoded_faults(faults: dict[str, Any]) -> dict[str, Any]:
    if "body_override" in faults:
        faults = {**faults, "body_override": faults["body_override"].encode()}
    return faults


def _stop_endpoint(server: Any) -> list[dict[str, Any]]:
    if isinstance(server, AgentServer):
        seen = [
            {"path": r.path, "authorization": r.headers.get("Authorization"), "status": r.status}
            for r in server.requests
        ]
        server.stop()
        return seen
    if isinstance(server, subprocess.Popen):
        server.terminate()
        try:
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    return []


def _wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {host}:{port} within {timeout} s")


def _run(argv: list[str], extra_env: dict[str, str], timeout: float) -> dict[str, Any]:
    # Exactly what a task sees: PATH, and the variables the agent sets. Nothing of ours.
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **extra_env}
    command = [sys.executable if part == "{python}" else part for part in argv]
    started = time.monotonic()
    result = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=timeout, check=False
    )
    return {
        "argv": argv,
        "code": result.returncode,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "seconds": round(time.monotonic() - started, 2),
    }


if __name__ == "__main__":
    sys.exit(main())
