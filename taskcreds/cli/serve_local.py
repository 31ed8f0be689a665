"""``taskcreds serve-local``: the ECS agent's credentials endpoint on this machine, until stopped.

What amazon-ecs-local-container-endpoints does, without Docker: run it, set the variable it
prints in the app's environment, and the app (any AWS SDK, or taskcreds) gets credentials as it
would inside a task. Credentials come from the caller's own AWS credentials (default), from STS
``AssumeRole`` (``--role-arn``), or are fake (``--fake``, no AWS needed). Fault flags make the
endpoint slow, failing or throttling, to test how an app copes.

The source is asked for one set before serving, so a misconfiguration (no credentials, AssumeRole
denied) ends the command at once with exit code 2. Then the variables go to stdout (text: an
env-file, comments start with ``#``; ``--json``: one document) and it serves until SIGINT or
SIGTERM, after which it exits 0.

A web page can rebind its own name to 127.0.0.1 and read this port as same-origin, so the server
answers only requests whose ``Host`` names it (its address, ``localhost``, or ``--allow-host``
names) and only paths that carry the credentials ID (or, with ``--pod-identity-token-file``, the
token). amazon-ecs-local-container-endpoints' ID-less ``/creds`` and ``/role/<name>`` are off
unless ``--compat-paths`` turns them on.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from taskcreds import environment
from taskcreds.cli import _options
from taskcreds.cli._common import EXIT_OK, Output
from taskcreds.credentials import Credentials, mask_key_id
from taskcreds.endpoint import is_loopback_host
from taskcreds.errors import ConfigError, TokenError
from taskcreds.local import (
    AGENT_RPS_BURST,
    AgentServer,
    AssumeRoleSource,
    CredentialSource,
    Faults,
    RotatingSource,
    ServedSource,
    SessionCredentialsSource,
)
from taskcreds.provider import CredentialProvider

EXAMPLE = "python -m taskcreds serve-local --role-arn arn:aws:iam::123456789012:role/AppA"

#: The ECS agent's own port for its credentials endpoint.
DEFAULT_PORT = 51679
ECS_ADDRESS = "169.254.170.2:80"
#: The agents' addresses: every SDK accepts FULL_URI over plain http to them, as to loopback.
AGENT_ADDRESSES = tuple(
    ipaddress.ip_address(address) for address in ("169.254.170.2", "169.254.170.23", "fd00:ec2::23")
)
#: EC2 instance metadata: never a FULL_URI host, not even by opt-in.
METADATA_ADDRESSES = tuple(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254"))
# Listening on every address: clients on this machine reach it through loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104

logger = logging.getLogger("taskcreds.cli.serve_local")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to listen, what to hand out, and how to misbehave."""
    listen = parser.add_argument_group("listening")
    listen.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    listen.add_argument(
        "--port",
        type=_options.port,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}, the agent's; 0 picks a free one)",
    )
    listen.add_argument(
        "--credentials-id",
        type=_options.credentials_id,
        help="the ID in /v2/credentials/<ID> (default: a random UUID)",
    )
    listen.add_argument(
        "--pod-identity-token-file",
        metavar="PATH",
        help="EKS Pod Identity mode: /v1/credentials (and every other credentials path) wants"
        " this file's content as Authorization",
    )
    listen.add_argument(
        "--allow-host",
        action="append",
        default=[],
        type=_options.allowed_host,
        metavar="NAME",
        help="also answer requests whose Host is NAME (a name or address, no port), e.g. the"
        " Compose service name; repeatable. A Host other than the listening address, localhost"
        " or these names gets 421, so a web page that rebinds its own name to this address"
        " cannot read the credentials",
    )
    listen.add_argument(
        "--compat-paths",
        action="store_true",
        help="also answer amazon-ecs-local-container-endpoints' /creds and /role/<name>. RISK:"
        " they need no credentials ID, so every process and container that can reach the port"
        " gets the credentials without knowing it (in Pod Identity mode they still want the"
        " token). Only for clients that cannot be given the /v2/credentials/<ID> URL",
    )

    source = parser.add_argument_group("credentials (default: your own AWS credentials)")
    choice = source.add_mutually_exclusive_group()
    choice.add_argument(
        "--role-arn", metavar="ARN", help="hand out this role's, via STS AssumeRole"
    )
    choice.add_argument(
        "--fake", action="store_true", help="hand out fake credentials (no AWS needed)"
    )
    source.add_argument(
        "--role-session-name", help="with --role-arn: the session name (default taskcreds-local)"
    )
    source.add_argument(
        "--duration",
        type=_options.positive_int,
        metavar="SECONDS",
        help="DurationSeconds for AssumeRole, or GetSessionToken with long-term keys (min 900)",
    )
    source.add_argument(
        "--lifetime",
        type=_options.positive_float,
        metavar="SECONDS",
        help="with --fake: how long each fake set is valid (default 3600)",
    )

    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--latency",
        type=_options.non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="delay answers",
    )
    faults.add_argument(
        "--fail-first",
        type=_options.non_negative_int,
        default=0,
        metavar="N",
        help="fail the first N credentials requests",
    )
    faults.add_argument(
        "--fail-status",
        type=_options.http_status,
        default=503,
        metavar="S",
        help="their HTTP status (default 503, the agent's CredentialsUninitialized)",
    )
    faults.add_argument(
        "--throttle",
        type=_options.non_negative_float,
        metavar="RPS",
        help="answer 429 over RPS requests/s per client (the agent: 40)",
    )
    faults.add_argument(
        "--burst",
        type=_options.positive_int,
        metavar="N",
        help=f"with --throttle: the token bucket's size (default {AGENT_RPS_BURST})",
    )


def run(args: argparse.Namespace, output: Output) -> int:
    _check_combinations(args)
    token_file = _token_file(args.pod_identity_token_file)
    faults = Faults(
        latency=args.latency,
        fail_first=args.fail_first,
        fail_status=args.fail_status,
        throttle_rps=args.throttle,
        throttle_burst=args.burst if args.burst is not None else AGENT_RPS_BURST,
    )
    source, description = _source(args)
    # The AWS sources fetch on every call; the provider caches them with the one refresh policy
    # (windows, single flight, stale-on-error). Fake sets rotate as the agent rotates them.
    provider = (
        None
        if isinstance(source, RotatingSource)
        else CredentialProvider.from_source(source, prefetch=True)
    )
    served: ServedSource = source if provider is None else provider.get
    try:
        first = (
            source.fetch() if provider is None else provider.get()
        )  # fail fast: no credentials, AssumeRole denied, STS unreachable
        print(
            f"taskcreds serve-local: {description}: {_summary(first)}",
            file=output.err,
        )
        server = AgentServer(
            served,
            host=args.host,
            port=args.port,
            credentials_id=args.credentials_id,
            faults=faults,
            pod_identity_token_file=token_file,
            # EKS Pod Identity sends AccountId and no RoleArn; the ECS agent the reverse.
            include_role_arn=token_file is None,
            include_account_id=token_file is not None,
            allowed_hosts=args.allow_host,
            compat_paths=args.compat_paths,
        )
        with _until_signalled() as stopped:
            _start(server, args.host, args.port)
            try:
                _announce(server, args, output, description, token_file)
                stopped.wait()
                logger.info("stopping: %s", stopped.signal_name)
            finally:
                server.stop()
    finally:
        (source if provider is None else provider).close()
    return EXIT_OK


# --- checks


def _check_combinations(args: argparse.Namespace) -> None:
    misplaced = [
        (
            args.role_session_name is not None and args.role_arn is None,
            "--role-session-name",
            "--role-arn",
        ),
        (args.lifetime is not None and not args.fake, "--lifetime", "--fake"),
        (
            args.duration is not None and args.fake,
            "--duration",
            "--role-arn or your own credentials",
        ),
        (args.burst is not None and args.throttle is None, "--burst", "--throttle"),
    ]
    for wrong, flag, needs in misplaced:
        if wrong:
            raise ConfigError(f"{flag} only applies with {needs}", hint=f"drop {flag}")


def _token_file(path: str | None) -> str | None:
    if path is None:
        return None
    absolute = os.path.abspath(path)
    try:
        with open(absolute, encoding="utf-8") as file:
            token = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(
            f"cannot read the pod identity token file {absolute}: {exc}",
            source=absolute,
            hint="write the token the app should send to that file first",
        ) from exc
    if not token.rstrip("\n"):
        raise TokenError(
            f"the pod identity token file {absolute} is empty",
            source=absolute,
            hint="write the token the app should send to that file first",
        )
    return absolute


def _source(args: argparse.Namespace) -> tuple[CredentialSource, str]:
    if args.fake:
        lifetime = args.lifetime if args.lifetime is not None else 3600.0
        return RotatingSource(lifetime=lifetime), f"fake credentials, each set valid {lifetime:g} s"
    if args.role_arn is not None:
        assume = AssumeRoleSource(
            args.role_arn,
            session_name=args.role_session_name or "taskcreds-local",
            duration_seconds=args.duration,
        )
        return assume, f"role {args.role_arn} (STS AssumeRole)"
    return SessionCredentialsSource(duration_seconds=args.duration), "your own AWS credentials"


def _summary(credentials: Credentials) -> str:
    role = credentials.role_arn or "no role (user credentials)"
    return (
        f"{role}, key {mask_key_id(credentials.access_key_id)},"
        f" expires {credentials.expiration.isoformat()}"
    )


# --- serving


class _Stop:
    """Set by SIGINT or SIGTERM."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name = "not signalled"

    def __call__(self, signum: int, frame: Any) -> None:
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    def wait(self) -> None:
        self._event.wait()


@contextlib.contextmanager
def _until_signalled() -> Iterator[_Stop]:
    """SIGINT and SIGTERM end the wait (no KeyboardInterrupt); the old handlers come back after."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("serve-local must run in the main thread (it handles signals)")
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(server: AgentServer, host: str, port: int) -> None:
    try:
        server.start()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host} port {port}: {exc.strerror or exc}",
            hint="--port 0 picks a free port; --host must be an address of this machine",
        ) from exc


def _announce(
    server: AgentServer,
    args: argparse.Namespace,
    output: Output,
    description: str,
    token_file: str | None,
) -> None:
    host = _WILDCARDS.get(server.host, server.host)
    base_url = f"http://[{host}]:{server.port}" if ":" in host else f"http://{host}:{server.port}"
    if token_file is not None:
        variables = {
            environment.FULL_URI: f"{base_url}/v1/credentials",
            environment.AUTH_TOKEN_FILE: token_file,
        }
    else:
        variables = {environment.FULL_URI: base_url + server.relative_uri}
    task_variables = {environment.RELATIVE_URI: server.relative_uri}
    warning = exposure_warning(server.host, server.port)
    if warning is not None:
        output.warn(warning)
    if args.compat_paths:
        output.warn(
            "--compat-paths: /creds and /role/<name> answer without the credentials ID: every"
            f" process that can reach port {server.port}"
            + (" and has the token" if token_file is not None else "")
            + " gets these credentials"
        )
    if output.json_mode:
        output.document(
            {
                "ok": True,
                "host": server.host,
                "port": server.port,
                "credentials_id": server.credentials_id,
                "source": "fake" if args.fake else "assume-role" if args.role_arn else "session",
                "pod_identity": token_file is not None,
                "allowed_hosts": list(args.allow_host),
                "compat_paths": args.compat_paths,
                "environment": variables,
                # Only where this server is reachable as 169.254.170.2:80, as the agent is.
                "task_environment": task_variables,
            }
        )
    else:
        output.line(f"# taskcreds serve-local: {description}")
        output.line("# Set in the app's environment:")
        for name, value in variables.items():
            output.line(f"{name}={value}")
        if token_file is None:
            output.line(
                f"# Or, only where this server is reachable as {ECS_ADDRESS}"
                " (as the agent is from a task):"
            )
            for name, value in task_variables.items():
                output.line(f"# {name}={value}")
    output.out.flush()
    print(
        f"taskcreds serve-local: serving on {server.base_url}; Ctrl-C stops it",
        file=output.err,
        flush=True,
    )


def exposure_warning(host: str, port: int) -> str | None:
    """The warning for listening on ``host``, or None for loopback.

    Off loopback, whoever reaches the port gets the credentials. Clients, for their part, send
    ``FULL_URI`` requests over plain http to loopback and to the agents' addresses (ECS
    169.254.170.2, EKS Pod Identity 169.254.170.23 and fd00:ec2::23), and to any other host only
    if opted in (taskcreds: ``TASKCREDS_ALLOWED_HOSTS``; most SDKs have no opt-in).
    """
    if is_loopback_host(host):
        return None
    exposed = f"listening on {host}: whoever reaches port {port} gets these credentials"
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address in AGENT_ADDRESSES:
        return f"{exposed}; every SDK accepts FULL_URI over http to {host}, an agent's address"
    if address in METADATA_ADDRESSES:
        return (
            f"{exposed}; no client sends FULL_URI requests to {host}, the instance metadata address"
        )
    allowed = ", ".join(str(address) for address in AGENT_ADDRESSES)
    return (
        f"{exposed}; clients accept FULL_URI over http only to loopback or {allowed}: to reach"
        f" this server by another name, taskcreds needs {environment.ALLOWED_HOSTS}=<name>, and"
        " other SDKs refuse it"
    )
