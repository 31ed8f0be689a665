"""Findings about this container's setup, shared by ``show`` and ``doctor``. Never any secret."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

from taskcreds import endpoint as _endpoint_module
from taskcreds import environment as env
from taskcreds.credentials import Credentials, format_timestamp, mask_key_id
from taskcreds.endpoint import Endpoint, resolve_endpoint
from taskcreds.errors import CredentialsExpiredError
from taskcreds.fetch import FetchResult
from taskcreds.provider import MANDATORY_WINDOW

__all__ = [
    "CLOCK_SKEW_LIMIT",
    "credential_warnings",
    "describe",
    "environment_warnings",
    "format_duration",
    "resolve_for_report",
]

#: Beyond this the clock is worth fixing; AWS rejects signed requests past 15 minutes of skew.
CLOCK_SKEW_LIMIT = timedelta(seconds=60)
_POD_IDENTITY_HOSTS = frozenset({"169.254.170.23", "fd00:ec2::23"})
# botocore learnt the Pod Identity host in 1.32.0, and re-reads the token file from 1.34.41.
_BOTOCORE_POD_IDENTITY = (1, 32, 0)
_BOTOCORE_TOKEN_REREAD = (1, 34, 41)


def format_duration(delta: timedelta) -> str:
    """``5h 59m``, ``9m 12s``, ``42s``; negative durations read ``expired 3m 2s ago``."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return f"expired {format_duration(-delta)} ago"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


class _Held(logging.Filter):
    """Holds back every record logged while it is installed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False


def resolve_for_report(environ: Mapping[str, str]) -> Endpoint:
    """:func:`resolve_endpoint` for a command that prints ``endpoint.warnings`` itself.

    The library logs each of those warnings too (for programs that never look at
    ``.warnings``); a command that shows them would print each one twice, once as its own
    ``warning:`` line and once as a log line. Their log records are dropped here, for this call
    only; any other record logged meanwhile is passed on unchanged.
    """
    logger = _endpoint_module.logger
    held = _Held()
    logger.addFilter(held)
    shown: tuple[str, ...] = ()
    try:
        endpoint = resolve_endpoint(environ)
        shown = endpoint.warnings
    finally:
        logger.removeFilter(held)
        for record in held.records:
            if not (record.levelno == logging.WARNING and record.getMessage() in shown):
                logger.handle(record)
    return endpoint


def environment_warnings(environ: Mapping[str, str], endpoint: Endpoint) -> list[str]:
    """What in this environment could make credentials misbehave, beyond taskcreds itself."""
    warnings = list(endpoint.warnings)
    if environ.get(env.ACCESS_KEY_ID):
        warnings.append(
            f"{env.ACCESS_KEY_ID} is set: boto3 and the aws CLI use static keys before the task "
            "role; unset it (taskcreds.session() ignores it)"
        )
    proxy = _proxy_without_bypass(environ, endpoint.url)
    if proxy:
        warnings.append(
            f"{proxy} is set and NO_PROXY does not cover {urlsplit(endpoint.url).hostname}: "
            "other SDKs may send credential requests through the proxy; add it to NO_PROXY"
        )
    warnings.extend(_botocore_warnings(endpoint))
    return warnings


def credential_warnings(
    credentials: Credentials, now: datetime, server_date: datetime | None
) -> list[str]:
    warnings = []
    left = credentials.time_left(now)
    if timedelta(0) < left <= MANDATORY_WINDOW:
        warnings.append(
            f"the credentials expire in {format_duration(left)}: the agent should have rotated "
            "them by now (is the agent stuck, or the task stopping?)"
        )
    skew = clock_skew(now, server_date)
    if skew is not None and abs(skew) > CLOCK_SKEW_LIMIT:
        direction = "ahead of" if skew > timedelta(0) else "behind"
        warnings.append(
            f"this machine's clock is {format_duration(abs(skew))} {direction} the endpoint's: "
            "refreshes happen that much early or late, and past 15 minutes AWS rejects signed "
            "requests (RequestTimeTooSkewed); fix NTP"
        )
    return warnings


def ensure_unexpired(credentials: Credentials, now: datetime) -> None:
    """Raise :class:`CredentialsExpiredError` for a set the endpoint served already expired."""
    left = credentials.time_left(now)
    if left <= timedelta(0):
        raise CredentialsExpiredError(
            f"the endpoint served credentials that expired {format_duration(-left)} ago "
            f"({format_timestamp(credentials.expiration)})",
            hint="check this machine's clock (NTP); if it is right, the agent is stuck",
        )


def clock_skew(now: datetime, server_date: datetime | None) -> timedelta | None:
    """Local clock minus the endpoint's ``Date`` (which has one-second resolution)."""
    return None if server_date is None else now - server_date


def describe(endpoint: Endpoint, result: FetchResult, now: datetime) -> dict[str, Any]:
    """The safe facts ``show`` prints: no secret key, no session token, a masked key id."""
    creds = result.credentials
    skew = clock_skew(now, result.server_date)
    return {
        "source": endpoint.variable,
        "kind": "ECS task role" if endpoint.kind == "relative" else "full URI",
        "endpoint": endpoint.display_url,
        "token_source": str(endpoint.token_source) if endpoint.token_source else None,
        "role_arn": creds.role_arn,
        "account_id": creds.account_id,
        "access_key_id": mask_key_id(creds.access_key_id),
        "expiration": format_timestamp(creds.expiration),
        "expires_in_seconds": int(creds.time_left(now).total_seconds()),
        "expires_in": format_duration(creds.time_left(now)),
        "clock_skew_seconds": None if skew is None else round(skew.total_seconds(), 1),
        "attempts": result.attempts,
    }


def _proxy_without_bypass(environ: Mapping[str, str], url: str) -> str | None:
    host = urlsplit(url).hostname or ""
    proxies = [
        name
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY")
        if environ.get(name)
    ]
    if not proxies:
        return None
    bypass = environ.get("NO_PROXY", environ.get("no_proxy", ""))
    if _bypassed(host, bypass):
        return None
    return proxies[0]


def _bypassed(host: str, no_proxy: str) -> bool:
    for entry in (item.strip().lower() for item in no_proxy.split(",")):
        if not entry:
            continue
        if entry in ("*", host) or host.endswith("." + entry.lstrip(".")):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _botocore_warnings(endpoint: Endpoint) -> list[str]:
    version = _installed_version("botocore")
    if version is None or endpoint.kind != "full":
        return []
    host = urlsplit(endpoint.url).hostname or ""
    if host in _POD_IDENTITY_HOSTS and version < _BOTOCORE_POD_IDENTITY:
        return [
            f"installed botocore {'.'.join(map(str, version))} predates 1.32.0 and does not "
            "accept the EKS Pod Identity host; boto3 without taskcreds will find no credentials"
        ]
    token = endpoint.token_source
    if token is not None and token.kind == "file" and version < _BOTOCORE_TOKEN_REREAD:
        return [
            f"installed botocore {'.'.join(map(str, version))} predates 1.34.41 and reads the "
            "token file only once; boto3 without taskcreds breaks when EKS rotates it"
        ]
    return []


def _installed_version(distribution: str) -> tuple[int, ...] | None:
    # Read from package metadata: importing botocore here would cost show its fast start.
    try:
        text = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
