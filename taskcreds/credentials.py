"""The :class:`Credentials` value, and parsing of the agent's success and error bodies.

Parsing never raises anything but :class:`MalformedResponseError`, and its messages name fields,
never their values, so a secret cannot leak through an error.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from taskcreds.errors import MalformedResponseError

__all__ = [
    "Credentials",
    "account_from_arn",
    "format_timestamp",
    "mask_key_id",
    "parse_credentials",
    "parse_error_body",
    "redact_secrets",
]

# RFC 3339 as the agents write it: 2026-11-29T23:04:05Z, optional fraction, Z or ±hh:mm.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_ERROR_DETAIL_LIMIT = 300


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, whole seconds, as the agent writes ``Expiration``: ``2026-11-29T21:04:05Z``.

    Always four digits of year (``strftime("%Y")`` writes the year 999 as ``999`` on glibc,
    which would sort after 2026), so the result compares with other such times as a string.
    """
    return moment.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def mask_key_id(access_key_id: str) -> str:
    """``ASIA…WXYZ``: enough to tell keys apart, not enough to use one."""
    if len(access_key_id) <= 8:
        return "…"
    return f"{access_key_id[:4]}…{access_key_id[-4:]}"


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """One immutable set of role credentials. ``repr`` and ``str`` never show the secrets."""

    access_key_id: str
    secret_access_key: str
    token: str
    #: When the set expires: an aware UTC datetime.
    expiration: datetime
    role_arn: str | None = None
    account_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key_id={mask_key_id(self.access_key_id)!r}, "
            f"expiration={self.expiration.isoformat()!r}, role_arn={self.role_arn!r}, "
            f"account_id={self.account_id!r})"
        )

    __str__ = __repr__

    def time_left(self, now: datetime) -> timedelta:
        """Time from ``now`` (aware) until expiry; negative once expired."""
        return self.expiration - now


def parse_credentials(body: bytes, *, url: str | None = None) -> Credentials:
    """Parse a 200 body from the ECS agent or the EKS Pod Identity agent."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedResponseError("the credentials response is not JSON", url=url) from exc
    if not isinstance(document, dict):
        raise MalformedResponseError("the credentials response is not a JSON object", url=url)
    access_key_id = _required(document, "AccessKeyId", url)
    secret = _required(document, "SecretAccessKey", url)
    token = _required(document, "Token", url)
    expiration = parse_expiration(_required(document, "Expiration", url), url=url)
    role_arn = _optional(document, "RoleArn", url)
    account_id = _optional(document, "AccountId", url) or account_from_arn(role_arn)
    return Credentials(access_key_id, secret, token, expiration, role_arn, account_id)


def parse_expiration(text: str, *, url: str | None = None) -> datetime:
    """RFC 3339 with ``Z`` or an offset and any number of fraction digits, as aware UTC."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise MalformedResponseError(
            "field 'Expiration' is not an RFC 3339 time with a UTC offset",
            field="Expiration",
            url=url,
        )
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if match.group(9):
        offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        if match.group(9) == "-":
            offset = -offset
    try:
        moment = datetime(
            year, month, day, hour, minute, min(second, 59), micro, tzinfo=timezone(offset)
        )
        # Valid RFC 3339 can still leave datetime's range once its offset is applied
        # (9999-12-31T23:59:59-01:00): that is a malformed answer, not a crash.
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise MalformedResponseError(
            "field 'Expiration' is not a valid date and time in UTC", field="Expiration", url=url
        ) from exc


def parse_error_body(body: bytes, *, redact: Iterable[str] = ()) -> tuple[str | None, str | None]:
    """``(code, message)`` from an error body: the agent's JSON, ``{Code, Message}``, or text.

    Every string in ``redact`` (a token, a credentials ID) is replaced in the *decoded* text,
    before it is shortened: a body that JSON-escapes an echoed token (``\\/``, ``\\u003c``)
    or echoes the request path cannot carry it into a message.
    """
    secrets = [secret for secret in redact if secret]
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            document: Any = json.loads(text)
        except (ValueError, RecursionError):
            document = None
        if isinstance(document, dict):
            code = document.get("code", document.get("Code"))
            message = document.get("message", document.get("Message"))
            return (
                _clean(code, secrets) if isinstance(code, str) and code else None,
                _clean(message, secrets) if isinstance(message, str) and message else None,
            )
    # Anything else is plain text, whatever Content-Type says: emulators mislabel both ways.
    return None, _clean(text, secrets) or None


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret, and its URL- and HTML-escaped spellings, replaced."""
    for secret in secrets:
        if not secret:
            continue
        for spelling in {secret, quote(secret, safe=""), html.escape(secret)}:
            text = text.replace(spelling, "[redacted]")
    return text


def _clean(text: str, secrets: Iterable[str]) -> str:
    return _shorten(redact_secrets(text, secrets))


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _ERROR_DETAIL_LIMIT:
        return text[:_ERROR_DETAIL_LIMIT] + "…"
    return text


def _required(document: dict[str, Any], name: str, url: str | None) -> str:
    value = document.get(name)
    if value is None:
        raise MalformedResponseError(
            f"the credentials response has no field '{name}'", field=name, url=url
        )
    if not isinstance(value, str) or not value:
        raise MalformedResponseError(
            f"field '{name}' of the credentials response is not a non-empty string",
            field=name,
            url=url,
        )
    return value


def _optional(document: dict[str, Any], name: str, url: str | None) -> str | None:
    if document.get(name) in (None, ""):
        return None
    return _required(document, name, url)


def account_from_arn(arn: str | None) -> str | None:
    # arn:partition:iam::123456789012:role/name
    if arn is None:
        return None
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[4].isdigit() and len(parts[4]) == 12:
        return parts[4]
    return None
