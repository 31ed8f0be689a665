"""``taskcreds doctor``: walk the chain step by step and stop at the first failure.

environment → endpoint allowed → (with a token) authorization token → TCP connect → HTTP →
response shape → expiry and clock → (``--sts`` or ``--bucket``) region → (``--sts``) STS
GetCallerIdentity → (``--bucket``) a write probe. Each step says what it saw; a failed one says
the likely cause and the fix. Never prints a secret.

The write probe puts ``PREFIX.taskcreds-doctor-<32 hex digits>`` with ``If-None-Match: *`` and
then deletes it; a least-privilege role may not ``s3:DeleteObject``, and then the object stays at
that key (a warning names it, the check still passes).
"""

from __future__ import annotations

import argparse
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from taskcreds import environment as env
from taskcreds._awserror import error_code_and_message
from taskcreds._region import checked_region, region_from_environment
from taskcreds.cli._common import (
    EXIT_ACCESS_DENIED,
    EXIT_CONFIG,
    EXIT_EXPIRED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_UPLOAD,
    Output,
    exit_code_for,
    fetch_once,
)
from taskcreds.cli._inspect import (
    credential_warnings,
    environment_warnings,
    format_duration,
)
from taskcreds.cli._options import add_timeout
from taskcreds.credentials import Credentials, mask_key_id
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
from taskcreds.provider import CredentialProvider
from taskcreds.sources import StaticSource
from taskcreds.upload._errors import classify
from taskcreds.upload.keys import normalize_prefix

EXAMPLE = "python -m taskcreds doctor --sts --bucket my-app-bucket --prefix uploads/"
#: The write probe's key, after the prefix (``uuid4().hex`` completes it).
PROBE_NAME = ".taskcreds-doctor-"
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


class _Stop(Exception):
    """A step failed; ``code`` is the exit code to leave with."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sts", action="store_true", help="also call STS GetCallerIdentity with the credentials"
    )
    parser.add_argument(
        "--bucket",
        help=f"also probe writing to this bucket: puts PREFIX{PROBE_NAME}<32 hex digits> "
        "with If-None-Match: * (the step prints the key), then deletes it if the role may "
        "s3:DeleteObject; a least-privilege role may not, and the object stays at that key "
        "(a warning says so)",
    )
    parser.add_argument(
        "--prefix",
        default=None,
        help="key prefix for the write probe (default: TASKCREDS_PREFIX or none)",
    )
    add_timeout(parser)


def run(args: argparse.Namespace, output: Output) -> int:
    doctor = _Doctor(os.environ, args.timeout)
    code: int = EXIT_OK
    try:
        endpoint = doctor.check_environment()
        doctor.check_endpoint_allowed()
        doctor.check_token()
        doctor.check_tcp(endpoint)
        result = doctor.check_http(endpoint)
        doctor.check_shape(result)
        doctor.check_expiry(result)
        bucket = args.bucket
        region: str | None = None
        if args.sts or bucket:
            region = doctor.check_region()
        if args.sts:
            doctor.check_sts(result.credentials, region)
        if bucket:
            prefix = args.prefix if args.prefix is not None else os.environ.get(env.PREFIX, "")
            # The same prefix the uploader and `policy` use: "app" means "app/".
            doctor.check_write(
                result.credentials, bucket, normalize_prefix(prefix, bucket=bucket), region
            )
    except _Stop as stop:
        code = stop.code
    _report(doctor.steps, code, output)
    return code


def _report(steps: list[Step], code: int, output: Output) -> None:
    if output.json_mode:
        output.document(
            {"ok": code == EXIT_OK, "exit_code": code, "steps": [asdict(s) for s in steps]}
        )
        return
    width = max(len(step.name) for step in steps)
    for step in steps:
        output.line(f"{'✓' if step.ok else '✗'} {step.name:<{width}}  {step.detail}")
        for warning in step.warnings:
            output.line(f"    ! {warning}")
        if step.cause:
            output.line(f"    cause: {step.cause}")
        if step.fix:
            output.line(f"    fix:   {step.fix}")
    if code == EXIT_OK:
        output.line("all checks passed")


class _Doctor:
    def __init__(self, environ: Mapping[str, str], timeout: float) -> None:
        self.environ = environ
        self.timeout = timeout
        self.steps: list[Step] = []
        self._endpoint: Endpoint | None = None

    def _fail(self, name: str, detail: str, cause: str | None, fix: str | None, code: int) -> None:
        self.steps.append(Step(name, False, detail, cause, fix))
        raise _Stop(code)

    def _fail_with(self, name: str, error: TaskCredsError, cause: str | None = None) -> None:
        self._fail(name, error.message, cause, error.hint, exit_code_for(error))

    # -- the chain ---------------------------------------------------------------------------

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
            raise  # not reached: _fail_token raises _Stop
        except ConfigError as error:
            self.steps.append(Step(name, True, detail))
            self._fail_with("endpoint allowed", error)
            raise  # not reached: _fail_with raises _Stop
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

    def check_region(self) -> str | None:
        """The region STS and S3 are called in: the one resolution the session and uploader use."""
        name = "region"
        try:
            region, where = region_from_environment(None, self.environ)
            if region is None:
                region, where = _configured_region()
        except ConfigError as error:
            variable = error.message.split("=", 1)[0]
            self._fail(
                name,
                error.message,
                f"{variable} is set, but malformed: botocore refuses it before any request",
                f"set {variable} to a region name such as eu-west-1 (lowercase letters, digits "
                "and dashes, no spaces), or unset it",
                EXIT_CONFIG,
            )
        if region is None:
            detail = (
                f"none set ({env.REGION}, {env.DEFAULT_REGION}, AWS config): boto3 uses "
                "us-east-1 and the global STS endpoint"
            )
        else:
            detail = f"{region} from {where}"
        self.steps.append(Step(name, True, detail))
        return region

    def check_sts(self, credentials: Credentials, region: str | None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with _static_client("sts", credentials, region, self.environ) as sts:
                identity = sts.get_caller_identity()
        except ClientError as error:
            code = _error_code(error)
            self._fail(
                "sts",
                f"GetCallerIdentity refused: {code}",
                _sts_cause(code),
                "run `taskcreds show` to see the role; check the clock and the role's trust",
                EXIT_EXPIRED if "Expired" in code else EXIT_ACCESS_DENIED,
            )
        except BotoCoreError as error:
            self._fail(
                "sts",
                f"GetCallerIdentity failed: {error}",
                _unreachable_cause("STS", region),
                _unreachable_fix("STS", region),
                EXIT_UNREACHABLE,
            )
        self.steps.append(Step("sts", True, f"STS says this is {identity.get('Arn')}"))

    def check_write(
        self, credentials: Credentials, bucket: str, prefix: str, region: str | None
    ) -> None:
        """Put the probe through the uploader itself (``If-None-Match: *``), signed with exactly
        these credentials, in the region :meth:`check_region` found; then delete it."""
        from taskcreds.upload import Uploader

        name = f"{PROBE_NAME}{uuid.uuid4().hex}"
        key = f"{prefix}{name}"
        resource = f"arn:aws:s3:::{bucket}/{key}"
        provider = _static_provider(credentials)
        try:
            with Uploader(
                bucket,
                prefix,
                provider=provider,
                region_name=region,
                environ=_signing_environ(self.environ),
            ) as uploader:
                uploader.upload_bytes(
                    b"taskcreds doctor probe\n", name, overwrite=False, content_type="text/plain"
                )
        except TaskCredsError as error:
            code, unreachable = _s3_cause(error)
            if code is not None:
                cause, fix, exit_code = _write_probe_finding(code, "s3:PutObject", bucket, prefix)
                self._fail(
                    "write probe",
                    f"s3:PutObject on {resource} refused: {code}",
                    cause,
                    fix,
                    exit_code,
                )
            if unreachable is not None:
                self._fail(
                    "write probe",
                    f"cannot reach S3: {unreachable}",
                    _unreachable_cause("S3", region),
                    _unreachable_fix("S3", region),
                    EXIT_UPLOAD,
                )
            self._fail_with("write probe", error)
        finally:
            provider.close()
        warnings = _delete_probe(credentials, bucket, key, region, self.environ)
        detail = f"wrote s3://{bucket}/{key} with If-None-Match: *"
        self.steps.append(Step("write probe", True, detail, warnings=warnings))


def _configured_region() -> tuple[str | None, str | None]:
    """boto3's own configuration (a profile's ``region``), checked as the variables are."""
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        value = botocore.session.Session().get_config_variable("region")
    except BotoCoreError:  # such as AWS_PROFILE naming no profile: the client will say so
        return None, None
    if not value:
        return None, None
    return checked_region(str(value), "region in the AWS config file"), "the AWS config file"


def _unreachable_cause(service: str, region: str | None) -> str:
    where = f"in {region}" if region else "with no region set (us-east-1 / global endpoint)"
    return f"{service} cannot be reached {where}: no route, a proxy, or a private network"


def _unreachable_fix(service: str, region: str | None) -> str:
    variable = f"AWS_ENDPOINT_URL_{service.upper()}"
    if region is None:
        return f"set {env.REGION} to the task's region, or {variable} for a private endpoint"
    return (
        f"give the task a route to {service} (NAT, or a VPC endpoint and {variable}); "
        f"check that {region} is the right region"
    )


def _delete_probe(
    credentials: Credentials, bucket: str, key: str, region: str | None, environ: Mapping[str, str]
) -> list[str]:
    """Remove the probe object; a least-privilege role may not, which is a note, not a fault."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        with _static_client("s3", credentials, region, environ) as s3:
            s3.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as error:
        return [
            f"the probe object was left behind: s3:DeleteObject refused ({_error_code(error)}), "
            f"as the least-privilege policy intends; delete it, or expire '{PROBE_NAME}*' "
            "with a lifecycle rule"
        ]
    return []


def _s3_cause(error: TaskCredsError) -> tuple[str | None, Exception | None]:
    """(S3's error code, or the connection error) behind an upload error: its ``__cause__``."""
    from botocore.exceptions import BotoCoreError

    cause = error.__cause__
    code = error_code_and_message(cause)[0] if isinstance(cause, Exception) else None
    if code:
        return code, None
    if isinstance(cause, BotoCoreError):
        return None, cause
    return None, None


def _error_code(error: Exception) -> str:
    return error_code_and_message(error)[0] or "?"


def _write_probe_finding(code: str, action: str, bucket: str, prefix: str) -> tuple[str, str, int]:
    """(cause, fix, exit code) for an S3 error answered to the write probe."""
    kind = classify(code)
    if kind == "denied":
        return (
            f"the task role lacks {action} on arn:aws:s3:::{bucket}/{prefix}*",
            f"grant {action} on arn:aws:s3:::{bucket}/{prefix}* to the task role "
            "(docs/uploading.md lists the actions each feature needs)",
            EXIT_ACCESS_DENIED,
        )
    if kind == "expired":
        return (
            "S3 does not accept these credentials: expired, or from another partition/endpoint",
            "check the clock, and that AWS_ENDPOINT_URL_S3 (if set) is the S3 of this account",
            EXIT_EXPIRED,
        )
    if kind == "no_bucket":
        return (
            f"bucket {bucket} does not exist (or is in another account)",
            "check TASKCREDS_BUCKET / --bucket and the region",
            EXIT_UPLOAD,
        )
    return f"S3 answered {code}", "check the bucket name and region", EXIT_UPLOAD


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


def _sts_cause(code: str) -> str:
    return {
        "ExpiredToken": "the session token has expired",
        "InvalidClientTokenId": "STS does not recognise the access key (wrong partition/region?)",
        "SignatureDoesNotMatch": "the request signature is wrong: clock skew or a mangled secret",
    }.get(code, f"STS refused the credentials ({code})")


def _signing_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without static keys: the session ignores them, and its warning naming the
    provider's endpoint has none to name for a static provider (the environment step already
    warned about them)."""
    return {name: value for name, value in environ.items() if name != env.ACCESS_KEY_ID}


def _static_provider(credentials: Credentials) -> CredentialProvider:
    """A provider that hands out exactly ``credentials``: the doctor checks this one set."""
    return CredentialProvider.from_source(StaticSource(credentials))


class _static_client:
    """A boto3 client signed with exactly these credentials (through :func:`taskcreds.session`,
    so the region resolution is the shared one), closed on exit."""

    def __init__(
        self,
        service: str,
        credentials: Credentials,
        region: str | None,
        environ: Mapping[str, str],
    ) -> None:
        from taskcreds.boto import session

        self._provider = _static_provider(credentials)
        boto_session: Any = session(
            provider=self._provider, region_name=region, environ=_signing_environ(environ)
        )
        self._client: Any = boto_session.client(service)

    def __enter__(self) -> Any:
        return self._client

    def __exit__(self, *exc: object) -> None:
        self._client.close()
        self._provider.close()
