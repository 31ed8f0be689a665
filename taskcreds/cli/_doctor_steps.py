"""The steps of ``taskcreds doctor`` up to the credentials: environment, endpoint allowed,
authorization token, TCP connect, HTTP, response shape, expiry and clock.

Each step appends a :class:`Step` saying what it saw; a failed one also says the likely cause and
the fix, and raises :class:`Stop` with the exit code to leave with. Never prints a secret.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

from taskcreds import environment as env
from taskcreds.cli._common import (
    EXIT_CONFIG,
    EXIT_EXPIRED,
    EXIT_UNREACHABLE,
    exit_code_for,
    fetch_once,
)
from taskcreds.cli._inspect import credential_warnings, environment_warnings, format_duration
from taskcreds.credentials import mask_key_id
from taskcreds.endpoint import Endpoint, resolve_endpoint
from taskcreds.errors import (
    ConfigError,
    EndpointError,
    EndpointHTTPError,
    EndpointUnreachableError,
    MalformedResponseError,
    TaskCredsError,
    TokenError,
)
from taskcreds.fetch import FetchResult

#: The step that reads the Authorization header's token (file or variable).
_AUTH_STEP = "authorization token"

_ECS_CAUSES = (
    "not running in an ECS task (or the task has no taskRoleArn)",
    "bridge or host networking without the agent's iptables rule for 169.254.170.2 "
    "(ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST on the container instance)",
    "ECS_ENABLE_TASK_IAM_ROLE is off in /etc/ecs/ecs.config, or the ECS agent is down",
)
_POD_IDENTITY_CAUSES = (
    "the EKS Pod Identity Agent add-on (DaemonSet) is not running on this node",
    "the pod's network cannot reach the node-local address (network policy, hostNetwork)",
)
_LOOPBACK_CAUSES = ("nothing listens there: start `python -m taskcreds serve-local`",)
#: The fix for an agent error code, where the code's hint would only repeat the cause.
_AGENT_FIXES = {
    "InvalidIdInRequest": "check that the credentials ID in the URI matches what the endpoint "
    "serves (serve-local prints the URI to use: /v2/credentials/<id>), or that the task was not "
    "stopped: in ECS the agent sets the URI itself, so restart the task if it was",
}
_AGENT_CODES = {
    "NoIdInRequest": "the URI carries no credentials ID",
    "InvalidIdInRequest": "the agent does not know this credentials ID: the task was stopped, its "
    "credentials revoked, or the agent restarted and lost them",
    "CredentialsUninitialized": "the agent restarted and has not yet been given this task's "
    "credentials",
    "InternalServerError": "the agent failed internally",
}


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    cause: str | None = None
    fix: str | None = None
    warnings: list[str] = field(default_factory=list)


class Stop(Exception):
    """A step failed; ``code`` is the exit code to leave with."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Checks:
    """The list of steps so far, and how a step fails (shared by every group of checks)."""

    def __init__(self, environ: Mapping[str, str], timeout: float) -> None:
        self.environ = environ
        self.timeout = timeout
        self.steps: list[Step] = []
        self._endpoint: Endpoint | None = None

    def _fail(self, name: str, detail: str, cause: str | None, fix: str | None, code: int) -> None:
        self.steps.append(Step(name, False, detail, cause, fix))
        raise Stop(code)

    def _fail_with(self, name: str, error: TaskCredsError, cause: str | None = None) -> None:
        self._fail(name, error.message, cause, error.hint, exit_code_for(error))


class EndpointChecks(Checks):
    """From the variables to credentials that have not expired."""

    def check_environment(self) -> Endpoint:
        name = "environment"
        relative = self.environ.get(env.RELATIVE_URI)
        full = self.environ.get(env.FULL_URI)
        if not relative and not full:
            self._fail(
                name,
                f"neither {env.RELATIVE_URI} nor {env.FULL_URI} is set",
                "not running in an ECS task or EKS pod, or the task definition has no "
                "taskRoleArn (the agent sets the variable only for tasks with a task role)",
                "add taskRoleArn to the task definition (EKS: a Pod Identity association); "
                "outside AWS, run `python -m taskcreds serve-local`",
                EXIT_CONFIG,
            )
        detail = (
            f"{env.RELATIVE_URI} is set (ECS task role)"
            if relative
            else f"{env.FULL_URI} is set (EKS Pod Identity or a local endpoint)"
        )
        try:
            endpoint = resolve_endpoint(self.environ)
        except TokenError as error:  # the plain token variable is checked when resolving
            self.steps.append(Step(name, True, detail))
            self._fail_token(error)
            raise  # not reached: _fail_token raises Stop
        except ConfigError as error:
            self.steps.append(Step(name, True, detail))
            self._fail_with("endpoint allowed", error)
            raise  # not reached: _fail_with raises Stop
        self._endpoint = endpoint
        self.steps.append(
            Step(name, True, detail, warnings=environment_warnings(self.environ, endpoint))
        )
        return endpoint

    def check_endpoint_allowed(self) -> None:
        endpoint = self._endpoint
        assert endpoint is not None
        self.steps.append(Step("endpoint allowed", True, endpoint.display_url))

    def check_token(self) -> None:
        """Read the token as every fetch does (the file is re-read each time); never print it."""
        endpoint = self._endpoint
        assert endpoint is not None
        source = endpoint.token_source
        if source is None:
            return
        try:
            endpoint.authorization()
        except TokenError as error:
            self._fail_token(error)
        self.steps.append(Step(_AUTH_STEP, True, f"read from {source} (one line, printable)"))

    def _fail_token(self, error: TokenError) -> None:
        token_file = self.environ.get(env.AUTH_TOKEN_FILE, "")
        if token_file:
            cause = (
                f"{env.AUTH_TOKEN_FILE} names a file that is missing, unreadable or not a token: "
                "on EKS the Pod Identity webhook mounts it only for a service account with a "
                "Pod Identity association"
            )
            fix = (
                f"check the pod's serviceAccountName and its association (aws eks "
                f"list-pod-identity-associations), and that {token_file} is mounted and "
                f"readable by this user; outside EKS, unset {env.AUTH_TOKEN_FILE} or point it "
                "at the token file"
            )
        else:
            cause = f"{env.AUTH_TOKEN} holds no usable token"
            fix = (
                f"set {env.AUTH_TOKEN} to the endpoint's token (one line of printable ASCII), or "
                f"use {env.AUTH_TOKEN_FILE}"
            )
        self._fail(_AUTH_STEP, error.message, cause, fix, exit_code_for(error))

    def check_tcp(self, endpoint: Endpoint) -> None:
        parts = urlsplit(endpoint.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        causes = _likely_causes(endpoint)
        try:
            with socket.create_connection((host, port), timeout=min(2.0, self.timeout)):
                pass
        except ConnectionRefusedError:
            self._fail(
                "tcp connect",
                f"connection to {target} refused",
                "; or ".join(causes),
                _tcp_fix(endpoint),
                EXIT_UNREACHABLE,
            )
        except TimeoutError:
            self._fail(
                "tcp connect",
                f"no answer from {target} (connect timed out)",
                "packets are dropped: " + "; or ".join(causes),
                _tcp_fix(endpoint),
                EXIT_UNREACHABLE,
            )
        except OSError as exc:
            self._fail(
                "tcp connect",
                f"cannot connect to {target}: {exc.strerror or exc}",
                "no route to the endpoint: " + "; or ".join(causes),
                _tcp_fix(endpoint),
                EXIT_UNREACHABLE,
            )
        self.steps.append(Step("tcp connect", True, f"{target} accepts connections"))

    def check_http(self, endpoint: Endpoint) -> FetchResult:
        retries: list[str] = []

        def note(attempt: int, error: EndpointError, wait: float) -> None:
            retries.append(f"attempt {attempt}: {_describe_error(error)}")

        try:
            result = fetch_once(self.timeout, endpoint=endpoint, on_retry=note)
        except EndpointHTTPError as error:
            fix = _http_fix(error)
            cause = _http_cause(error)
            self._fail("http", _describe_error(error), cause, fix, exit_code_for(error))
        except EndpointUnreachableError as error:
            cause = (
                "the endpoint accepted the connection but did not answer in time: the agent is "
                "hung or overloaded"
                if error.reason == "timeout"
                else "the endpoint closed the connection without an HTTP answer"
            )
            self._fail_with("http", error, cause)
        except MalformedResponseError as error:
            self.steps.append(Step("http", True, "HTTP 200"))
            self._fail_with("response shape", error, _shape_cause(error))
        detail = "HTTP 200"
        if retries:
            detail += f" after {result.attempts} attempts"
        self.steps.append(Step("http", True, detail, warnings=retries))
        return result

    def check_shape(self, result: FetchResult) -> None:
        creds = result.credentials
        who = creds.role_arn or (
            f"account {creds.account_id}" if creds.account_id else "an unnamed role"
        )
        self.steps.append(
            Step(
                "response shape",
                True,
                f"credentials for {who}, access key {mask_key_id(creds.access_key_id)}",
            )
        )

    def check_expiry(self, result: FetchResult) -> None:
        now = datetime.now(timezone.utc)
        left = result.credentials.time_left(now)
        if left.total_seconds() <= 0:
            self._fail(
                "expiry and clock",
                f"the credentials expired {format_duration(-left)} ago",
                "the agent served an expired set, or this machine's clock is far ahead",
                "check the clock (NTP); if it is right, the agent is stuck: restart the task",
                EXIT_EXPIRED,
            )
        warnings = credential_warnings(result.credentials, now, result.server_date)
        detail = f"expire in {format_duration(left)}"
        self.steps.append(Step("expiry and clock", True, detail, warnings=warnings))


def _likely_causes(endpoint: Endpoint) -> tuple[str, ...]:
    host = urlsplit(endpoint.url).hostname or ""
    if endpoint.kind == "relative":
        return _ECS_CAUSES
    if host in ("169.254.170.23", "fd00:ec2::23"):
        return _POD_IDENTITY_CAUSES
    return (
        _LOOPBACK_CAUSES if host in ("127.0.0.1", "localhost", "::1") else ("the server is down",)
    )


def _tcp_fix(endpoint: Endpoint) -> str:
    if endpoint.kind == "relative":
        return (
            "run this inside the task (`docker exec` / ECS Exec); on EC2 launch type check "
            "ECS_ENABLE_TASK_IAM_ROLE=true and the agent's iptables rules"
        )
    return (
        "start the credentials agent or serve-local, or correct AWS_CONTAINER_CREDENTIALS_FULL_URI"
    )


def _describe_error(error: EndpointError) -> str:
    if isinstance(error, EndpointHTTPError):
        text = f"HTTP {error.status}" + (f" {error.code}" if error.code else "")
        return f"{text}: {error.detail}" if error.detail else text
    return error.message


def _http_cause(error: EndpointHTTPError) -> str:
    if error.code in _AGENT_CODES:
        return _AGENT_CODES[error.code]
    if error.status == 429:
        return (
            "more than 40 requests/s from this task: an SDK client per request, or a "
            "process that does not cache credentials"
        )
    if error.status == 400 and error.detail and "token" in error.detail.lower():
        return (
            "the EKS Pod Identity agent got no service-account token: "
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is missing or empty"
        )
    if error.status in (401, 403):
        return "the Authorization token was refused (EKS Pod Identity token missing or stale)"
    if error.status == 404:
        return "the URL is not a credentials path"
    return f"the endpoint answered HTTP {error.status}"


def _http_fix(error: EndpointHTTPError) -> str | None:
    if error.code in _AGENT_FIXES:
        return _AGENT_FIXES[error.code]
    if error.hint is None and error.status == 400 and "token" in (error.detail or "").lower():
        return (
            f"set {env.AUTH_TOKEN_FILE} to the pod's token file: the Pod Identity webhook sets it "
            "for pods whose service account has an association when they are created; restart "
            "pods created before the association (docs/eks.md)"
        )
    return error.hint


def _shape_cause(error: MalformedResponseError) -> str:
    if error.field:
        return f"the answer lacks a usable '{error.field}': not an ECS/EKS credentials agent"
    return "the answer is not the agent's JSON: a proxy, captive portal or a different server"
