"""One fetch of credentials from the endpoint: a GET, retried by tenacity inside one deadline.

The deadline bounds the whole call. Each attempt's connect and read timeouts are capped by the time
left, the socket's wait is shortened again before every read of the body, and no backoff sleep is
started that would end past the deadline.
"""

from __future__ import annotations

import errno
import logging
import platform
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

import requests
import tenacity
import urllib3.exceptions

from taskcreds._recorder import error_fields
from taskcreds._time import Monotonic, Sleep
from taskcreds._transport import Watchdog, new_session, pinned
from taskcreds._version import __version__
from taskcreds.credentials import Credentials, parse_credentials, parse_error_body
from taskcreds.endpoint import Endpoint, is_loopback_host
from taskcreds.errors import (
    EndpointError,
    EndpointHTTPError,
    EndpointUnreachableError,
    MalformedResponseError,
    ThrottledError,
    UnsupportedHostError,
)

__all__ = ["DEFAULT_DEADLINE", "FetchResult", "Fetcher", "RetryObserver", "observing_retries"]

logger = logging.getLogger("taskcreds")

#: The agent answers from memory in about a millisecond; 1 s to connect is generous on a busy host.
DEFAULT_CONNECT_TIMEOUT = 1.0
#: Same read timeout as botocore's container provider.
DEFAULT_READ_TIMEOUT = 2.0
#: The whole fetch, retries included; long enough for two or three tries after an agent restart.
DEFAULT_DEADLINE = 5.0
DEFAULT_MAX_ATTEMPTS = 4
#: A credentials document is under 2 KiB; this bounds memory whatever a server sends.
MAX_BODY_BYTES = 64 * 1024
#: Full-jitter exponential backoff: sleep a random time in [0, min(cap, base * 2**n)].
BACKOFF_BASE = 0.2
BACKOFF_CAP = 2.0
#: Never start an attempt with less time than this left: it could only time out.
_MIN_ATTEMPT_SECONDS = 0.05
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Older agents answer InvalidIdInRequest for a while after they restart.
_RETRYABLE_CODES = frozenset({"InvalidIdInRequest", "CredentialsUninitialized"})

_CODE_HINTS = {
    "NoIdInRequest": "the URI has no credentials ID; the ECS agent sets "
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI itself, do not set it by hand",
    "InvalidIdInRequest": "the agent does not know this credentials ID: the task was stopped, its "
    "credentials were revoked, or the agent restarted (this is retried)",
    "CredentialsUninitialized": "the agent restarted and has not received this task's credentials "
    "yet (this is retried)",
    "InternalServerError": "the agent failed; check the ECS agent's log on the container instance",
}
_AUTH_REFUSED_HINT = (
    "the endpoint refused the Authorization token; check AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
)
_STATUS_HINTS = {
    401: _AUTH_REFUSED_HINT,
    403: _AUTH_REFUSED_HINT,
    404: "the URL is not a credentials path (ECS: /v2/credentials/<id>; EKS: /v1/credentials)",
    429: "over the agent's limit of 40 requests/s per client: share one provider per process "
    "(taskcreds.get_credentials()) instead of fetching per request",
}


@dataclass(frozen=True)
class FetchResult:
    """What one successful fetch learned."""

    credentials: Credentials
    #: The endpoint's ``Date`` header, for clock-skew checks (None when absent or unparseable).
    server_date: datetime | None
    attempts: int
    elapsed: float


RetryObserver = Callable[[int, EndpointError, float], None]
"""Told ``(attempt number, the error, seconds until the next attempt)`` before each retry."""

_context_observer: ContextVar[RetryObserver | None] = ContextVar(
    "taskcreds_retry_observer", default=None
)


@contextmanager
def observing_retries(observer: RetryObserver) -> Iterator[None]:
    """Tell ``observer`` of each retry of every fetch made in this context (this thread or
    task), besides each fetcher's own ``on_retry``. Nested uses see only their own fetches."""
    token = _context_observer.set(observer)
    try:
        yield
    finally:
        _context_observer.reset(token)


class Fetcher:
    """Fetches credentials from an :class:`~taskcreds.endpoint.Endpoint`.

    ``session`` may be any ``requests.Session``; the default one ignores proxy variables
    (``trust_env=False``) so no proxy ever sees a request for link-local credentials.
    """

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        sleep: Sleep = time.sleep,
        monotonic: Monotonic = time.monotonic,
        on_retry: RetryObserver | None = None,
    ) -> None:
        if min(connect_timeout, read_timeout, deadline) <= 0 or max_attempts < 1:
            raise ValueError("timeouts and the deadline must be positive, max_attempts at least 1")
        self._owns_session = session is None
        self._session = session if session is not None else new_session()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._monotonic = monotonic
        self._on_retry = on_retry

    def reset_after_fork(self) -> None:
        """Drop pooled connections inherited from the parent process (they share its sockets)."""
        if self._owns_session:
            self._session = new_session()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def fetch(self, endpoint: Endpoint) -> FetchResult:
        """GET the endpoint until it answers with credentials, a final error, or the deadline."""
        started = self._monotonic()
        deadline = started + self.deadline
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_retryable),
            wait=tenacity.wait_random_exponential(multiplier=BACKOFF_BASE, max=BACKOFF_CAP),
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(self.max_attempts), self._stop_before(deadline)
            ),
            sleep=self._sleep,
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            credentials, server_date = retrying(self._attempt, endpoint, deadline)
        except EndpointError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            if attempts > 1:
                exc.message += f" (gave up after {attempts} attempts)"
            raise
        return FetchResult(
            credentials=credentials,
            server_date=server_date,
            attempts=retrying.statistics.get("attempt_number", 1),
            elapsed=self._monotonic() - started,
        )

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(exc, EndpointError):  # only EndpointErrors are retried
            return
        # INFO for a bare fetch (the CLI's `show -v`). A provider's fetch is observed, and the
        # provider writes the fetch's one record (INFO, WARNING or ERROR, with the attempt
        # count), so each retry is only DEBUG there.
        observer = _context_observer.get()
        error_type, status, code, text = error_fields(exc)
        logger.log(
            logging.INFO if observer is None else logging.DEBUG,
            "credentials fetch attempt %d failed (%s); retrying in %.2f s",
            state.attempt_number,
            text,
            state.upcoming_sleep,
            extra={
                "taskcreds_event": "retry",
                "taskcreds_source": exc.url,
                "taskcreds_attempt": state.attempt_number,
                "taskcreds_delay": state.upcoming_sleep,
                "taskcreds_status": status,
                "taskcreds_error_type": error_type,
                "taskcreds_code": code,
                "taskcreds_error": text,
            },
        )
        for tell in (self._on_retry, observer):
            if tell is not None:
                tell(state.attempt_number, exc, state.upcoming_sleep)

    def _stop_before(self, deadline: float) -> _StopBeforeDeadline:
        return _StopBeforeDeadline(deadline, self._monotonic)

    def _attempt(self, endpoint: Endpoint, deadline: float) -> tuple[Credentials, datetime | None]:
        url = endpoint.display_url
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        token = endpoint.authorization()  # bounded: a small regular file, inside the deadline
        if token is not None:
            headers["Authorization"] = token
        addresses = self._checked_addresses(endpoint, deadline, url)
        left = self._time_left(deadline, url)
        with pinned(addresses), Watchdog(left) as watchdog:
            try:
                response = self._session.get(
                    endpoint.url,
                    headers=headers,
                    timeout=(min(self.connect_timeout, left), min(self.read_timeout, left)),
                    stream=True,
                    allow_redirects=False,  # a redirect could point at a host not allowed
                )
                try:
                    body = self._read_body(response, url)
                finally:
                    response.close()
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                # Not chained: the library's message carries the full URL, credentials ID and all.
                if watchdog.fired:
                    raise self._deadline_error(url) from None
                raise _unreachable(exc, url) from None
        if response.status_code != 200:
            raise _http_error(response.status_code, body, url, endpoint.redactions(token))
        return parse_credentials(body, url=url), _server_date(response)

    def _checked_addresses(
        self, endpoint: Endpoint, deadline: float, url: str
    ) -> tuple[str, ...] | None:
        """Resolve and check the endpoint's host within the time left (see ``_transport``)."""
        left = self._time_left(deadline, url)
        try:
            return endpoint.connect_addresses(left)
        except TimeoutError:
            raise self._deadline_error(url) from None
        except (OSError, ValueError) as exc:  # UnicodeError is a ValueError
            if isinstance(exc, UnsupportedHostError):
                raise
            raise EndpointUnreachableError(
                f"the credentials endpoint {url} host name could not be resolved "
                f"({type(exc).__name__})",
                url=url,
                reason="dns",
                hint="check the host name in AWS_CONTAINER_CREDENTIALS_FULL_URI and this "
                "container's DNS settings",
            ) from None

    def _time_left(self, deadline: float, url: str) -> float:
        left = deadline - self._monotonic()
        if left <= 0:
            raise self._deadline_error(url)
        return left

    def _deadline_error(self, url: str) -> EndpointUnreachableError:
        return EndpointUnreachableError(
            f"no answer from the credentials endpoint {url} within the {self.deadline:g} s "
            "deadline",
            url=url,
            reason="timeout",
            hint=None if _is_loopback_url(url) else _TIMEOUT_HINT,
        )

    def _read_body(self, response: requests.Response, url: str) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _too_large(url)
        body = bytearray()
        for chunk in response.iter_content(8192):
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise _too_large(url)
        return bytes(body)


_USER_AGENT = f"taskcreds/{__version__} python/{platform.python_version()}"
_TIMEOUT_HINT = (
    "the agent did not answer in time: check that this runs in an ECS task or EKS pod and that "
    "nothing blocks 169.254.170.2 (bridge/host networking needs the agent's iptables rule)"
)


class _StopBeforeDeadline(tenacity.stop.stop_base):
    """Stop when the coming backoff sleep would leave no time for another attempt."""

    def __init__(self, deadline: float, monotonic: Monotonic) -> None:
        self._deadline = deadline
        self._monotonic = monotonic

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        ends = self._monotonic() + retry_state.upcoming_sleep + _MIN_ATTEMPT_SECONDS
        return ends >= self._deadline


def _too_large(url: str) -> MalformedResponseError:
    return MalformedResponseError(
        f"the credentials response is larger than {MAX_BODY_BYTES // 1024} KiB", url=url
    )


def _server_date(response: requests.Response) -> datetime | None:
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, EndpointError) and exc.retryable


def _http_error(
    status: int, body: bytes, url: str, redactions: tuple[str, ...]
) -> EndpointHTTPError:
    # A server that echoes request headers or the path must not make the token or the
    # credentials ID part of an error: they are replaced in the decoded text.
    code, detail = parse_error_body(body, redact=redactions)
    retryable = status in _RETRYABLE_STATUSES or (status == 400 and code in _RETRYABLE_CODES)
    hint = _CODE_HINTS.get(code or "") or _STATUS_HINTS.get(status)
    if hint is None and 300 <= status < 400:
        hint = "the endpoint redirected; taskcreds does not follow redirects for credentials"
    described = " ".join(part for part in (str(status), code) if part)
    message = f"the credentials endpoint {url} answered HTTP {described}"
    if detail:
        message += f": {detail}"
    error_type = ThrottledError if status == 429 else EndpointHTTPError
    return error_type(
        message, url=url, status=status, code=code, detail=detail, hint=hint, retryable=retryable
    )


_Reason = Literal["refused", "timeout", "reset", "dns", "other"]


def _unreachable(exc: Exception, url: str) -> EndpointUnreachableError:
    reason = _network_reason(exc)
    what = {
        "refused": "refused the connection",
        "timeout": "did not answer in time",
        "reset": "closed the connection",
        "dns": "host name could not be resolved",
        "other": "could not be reached",
    }[reason]
    if _is_loopback_url(url):
        hints = {
            "refused": "nothing listens there: start the local endpoint "
            "(`python -m taskcreds serve-local`) or check the port",
            "timeout": "the local endpoint accepted the connection but did not answer",
        }
    else:
        hints = {
            "refused": "nothing listens there: not in ECS/EKS, the agent is down, or "
            "ECS_ENABLE_TASK_IAM_ROLE is off on the container instance",
            "timeout": _TIMEOUT_HINT,
        }
    return EndpointUnreachableError(
        f"the credentials endpoint {url} {what} ({type(exc).__name__})",
        url=url,
        reason=reason,
        hint=hints.get(reason),
    )


def _is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def _network_reason(exc: BaseException) -> _Reason:
    if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
        return "timeout"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "refused"
        if isinstance(cause, socket.gaierror):
            return "dns"
        if isinstance(cause, TimeoutError | socket.timeout):
            return "timeout"
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return "reset"
        if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
            return "refused"
    text = str(exc)
    if "Connection refused" in text:
        return "refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset" in text:
        return "reset"
    return "other"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Every exception chained to ``exc``: causes, contexts, args and urllib3's ``reason``."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        related = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        related += [arg for arg in current.args if isinstance(arg, BaseException)]
        stack.extend(item for item in related if isinstance(item, BaseException))
