r"""Credential sources backed by real AWS (or an STS-compatible emulator) through boto3.

- :class:`SessionCredentialsSource` hands out the caller's own credentials (boto3's default chain).
- :class:`AssumeRoleSource` hands out a role's credentials from STS ``AssumeRole``.

Both are plain :class:`~taskcreds.sources.CredentialSource`\ s: every ``fetch()`` asks STS (or
boto3's chain) once, and a set that has already expired is never returned. They keep no cache:
``serve-local`` wraps one in ``CredentialProvider.from_source(...)``, so the refresh windows,
single flight and stale-on-error fallback are the provider's, the one policy of the code base.
A failed fetch raises :class:`CredentialSourceError`, which the local server turns into the
agent's 500 ``InternalServerError``.

boto3 is imported only when a source first fetches, never when this module is imported. STS
clients are made from a boto3 ``Session``, so boto3's own endpoint overrides
(``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL``), profiles and region settings apply.
"""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

from taskcreds._awserror import error_code_and_message
from taskcreds._time import Clock, utc_now
from taskcreds.credentials import Credentials
from taskcreds.errors import ConfigError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_sts import STSClient

__all__ = [
    "ROLE_ARN_PATTERN",
    "AssumeRoleSource",
    "CredentialSourceError",
    "SessionCredentialsSource",
]

logger = logging.getLogger("taskcreds.local")

#: An IAM role ARN: partition, 12-digit account, optional path, role name.
ROLE_ARN_PATTERN = re.compile(
    r"arn:(aws[a-z-]*):iam::(\d{12}):role/((?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64})", re.ASCII
)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_ROLE_ARN_HINT = (
    "a role ARN looks like arn:aws:iam::123456789012:role/AppA "
    "(aws iam get-role --role-name NAME --query Role.Arn prints it)"
)
# When boto3 holds a session token without an expiry (AWS_SESSION_TOKEN, or aws_session_token in a
# profile), nobody knows when it expires: the served Expiration claims this much.
_UNKNOWN_EXPIRY_CLAIM = timedelta(hours=1)
# STS limits for DurationSeconds.
_MIN_DURATION = 900
_MAX_ASSUME_ROLE_DURATION = 43_200
_MAX_SESSION_TOKEN_DURATION = 129_600
# STS answers in well under a second; a stalled call must not outlast the agent's 5 s deadline.
_CONNECT_TIMEOUT = 3.0
_READ_TIMEOUT = 4.0
_MESSAGE_LIMIT = 300
# The "operation" of a failure while boto3 loads (or refreshes) the caller's own credentials.
_CHAIN = "CredentialChain"
# Error codes an emulator (or an old partition) answers for an STS action it does not implement.
_UNSUPPORTED_CODES = frozenset(
    {"InvalidAction", "NotImplemented", "UnknownOperationException", "UnsupportedOperation"}
)
_BAD_CREDENTIALS_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)
_BAD_CREDENTIALS_HINT = (
    "your own AWS credentials are invalid or expired: renew them (aws sso login, new keys, "
    "AWS_PROFILE), and check them with: aws sts get-caller-identity"
)


class CredentialSourceError(ConfigError):
    """An AWS-backed source could not get credentials: no credentials, STS refused, STS unreachable.

    ``serve-local`` checks its source once at start, so this is a configuration error there (exit
    code 2). While serving, the server answers 500 ``InternalServerError`` and logs the message.
    Messages hold the STS operation, error code and AWS's own message, never a key or a token.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        code: str | None = None,
        hint: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        #: The STS operation that failed (``AssumeRole``...), when one did.
        self.operation = operation
        #: AWS's error code (``AccessDenied``...), or the botocore exception name.
        self.code = code
        self.retryable = retryable


def parse_role_arn(role_arn: str) -> tuple[str, str]:
    """``(partition, account id)`` of a role ARN; :class:`ConfigError` with a hint if not one."""
    match = ROLE_ARN_PATTERN.fullmatch(role_arn)
    if match is None:
        raise ConfigError(f"not an IAM role ARN: {role_arn!r}", hint=_ROLE_ARN_HINT)
    return match.group(1), match.group(2)


class _STSSource(ABC):
    """What both sources share: one STS client, error translation; subclasses say how to fetch."""

    def __init__(self, session: boto3.Session | None, clock: Clock) -> None:
        self._session = session
        self._clock = clock
        self._lock = threading.Lock()
        self._client: STSClient | None = None
        self._fetches = 0

    @property
    def fetches(self) -> int:
        """How many sets have been fetched from AWS so far."""
        return self._fetches

    def fetch(self) -> Credentials:
        """One set from AWS now, or :class:`CredentialSourceError`."""
        with self._lock:  # one STS client, made once; the provider serialises fetches anyway
            fresh = self._fetch_checked(self._clock())
            self._fetches += 1
            return fresh

    __call__ = fetch

    def close(self) -> None:
        """Close the STS client's connections; the source fetches again with a new one if called."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def reset_after_fork(self) -> None:
        """A client made in the parent shares its connection pool: make a new one here."""
        self._lock = threading.Lock()
        self._client = None

    def __enter__(self) -> _STSSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _fetch_checked(self, now: datetime) -> Credentials:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            fresh = self._fetch(now)
        except (BotoCoreError, ClientError) as exc:
            raise _describe(exc, self._operation) from exc
        if fresh.expiration <= self._clock():
            raise CredentialSourceError(
                f"{_what(self._operation)} returned credentials that have already expired"
                f" (at {fresh.expiration.isoformat()})",
                operation=self._operation,
                hint="check this machine's clock (and the STS endpoint's)",
            )
        return fresh

    @property
    @abstractmethod
    def _operation(self) -> str:
        """The STS operation a failure is attributed to."""

    @abstractmethod
    def _fetch(self, now: datetime) -> Credentials:
        """One set from AWS; botocore errors propagate. Called with the lock held."""

    def _boto_session(self) -> boto3.Session:
        if self._session is None:
            import boto3

            self._session = boto3.Session()
        return self._session

    def _sts(self) -> STSClient:
        if self._client is None:
            from botocore.config import Config

            config = Config(
                connect_timeout=_CONNECT_TIMEOUT,
                read_timeout=_READ_TIMEOUT,
                retries={"mode": "standard", "total_max_attempts": 2},  # two tries in all
                user_agent_extra="taskcreds-local",
            )
            session = self._boto_session()
            # STS is global: without a region boto3 uses sts.amazonaws.com, but it refuses to go
            # without one once an endpoint override (AWS_ENDPOINT_URL_STS) is set. us-east-1 is
            # where the global endpoint lives.
            self._client = session.client(
                "sts", region_name=session.region_name or "us-east-1", config=config
            )
        return self._client


class AssumeRoleSource(_STSSource):
    """A role's credentials, from STS ``AssumeRole`` made with the caller's own credentials.

    ``RoleArn`` is the ARN asked for and ``AccountId`` the account in it. ``duration_seconds``
    (900 to 43200; STS also caps it at the role's maximum session duration) is left to STS's
    default (one hour) when None. A bad ARN or session name raises :class:`ConfigError` here,
    before any request.
    """

    def __init__(
        self,
        role_arn: str,
        *,
        session_name: str = "taskcreds-local",
        duration_seconds: int | None = None,
        session: boto3.Session | None = None,
        clock: Clock = utc_now,
    ) -> None:
        _partition, self.account_id = parse_role_arn(role_arn)
        if _SESSION_NAME.fullmatch(session_name) is None:
            raise ConfigError(
                f"not a valid role session name: {session_name!r}",
                hint="2 to 64 characters: letters, digits and + = , . @ _ -",
            )
        _check_duration(duration_seconds, _MAX_ASSUME_ROLE_DURATION, "AssumeRole")
        super().__init__(session, clock)
        self.role_arn = role_arn
        self.session_name = session_name
        self.duration_seconds = duration_seconds

    @property
    def _operation(self) -> str:
        return "AssumeRole"

    def _fetch(self, now: datetime) -> Credentials:
        sts = self._sts()
        if self.duration_seconds is None:
            answer = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=self.session_name)
        else:
            answer = sts.assume_role(
                RoleArn=self.role_arn,
                RoleSessionName=self.session_name,
                DurationSeconds=self.duration_seconds,
            )
        issued = answer["Credentials"]
        return Credentials(
            access_key_id=issued["AccessKeyId"],
            secret_access_key=issued["SecretAccessKey"],
            token=issued["SessionToken"],
            expiration=_utc(issued["Expiration"]),
            role_arn=self.role_arn,
            account_id=self.account_id,
        )


class SessionCredentialsSource(_STSSource):
    """The caller's own credentials, from boto3's default chain (or ``session``'s).

    - Temporary credentials (they have a session token: SSO, a role profile, ``AWS_SESSION_TOKEN``)
      are passed through as they are. Their ``Expiration`` is the one botocore's
      ``RefreshableCredentials`` holds (read from its private ``_expiry_time``: botocore has no
      public accessor). Credentials without one (a token from ``AWS_SESSION_TOKEN`` or a profile's
      ``aws_session_token``) have an expiry nobody knows: the served ``Expiration`` then *claims*
      one hour from the fetch, which may be later than the truth, in which case apps get AWS's
      ``ExpiredToken`` when the real one passes.
    - Long-term keys (no token) are turned into session credentials with STS ``GetSessionToken``
      (the agent always serves a ``Token``), lasting ``duration_seconds`` (900 to 129600; STS's
      default, 12 hours, when None). An STS that refuses it fails with a
      :class:`CredentialSourceError` whose hint names the alternatives.

    ``AccountId`` and ``RoleArn`` come from STS ``GetCallerIdentity`` (asked once): ``RoleArn``
    is the role behind an ``assumed-role`` identity (rebuilt as ``arn:PARTITION:iam::ACCOUNT:
    role/NAME``: the role's path is not in the identity) and None for a user. An STS that does not
    implement ``GetCallerIdentity`` leaves both None; any other failure of it is an error, as it
    means the credentials are not valid.
    """

    def __init__(
        self,
        session: boto3.Session | None = None,
        *,
        duration_seconds: int | None = None,
        clock: Clock = utc_now,
    ) -> None:
        _check_duration(duration_seconds, _MAX_SESSION_TOKEN_DURATION, "GetSessionToken")
        super().__init__(session, clock)
        self.duration_seconds = duration_seconds
        self._identity: tuple[str | None, str | None] | None = None
        self._last_operation = _CHAIN
        #: How the last set was obtained: boto3's credential method, e.g. ``sso`` or ``env``.
        self.method: str | None = None

    @property
    def _operation(self) -> str:
        return self._last_operation

    def _fetch(self, now: datetime) -> Credentials:
        self._last_operation = _CHAIN
        found = self._boto_session().get_credentials()
        if found is None:
            raise _no_credentials()
        self.method = found.method
        frozen = found.get_frozen_credentials()  # refreshes them first if botocore thinks it due
        if not frozen.access_key or not frozen.secret_key:
            raise _no_credentials()
        role_arn, account_id = self._caller_identity()
        if frozen.token:
            expiry = getattr(found, "_expiry_time", None)
            expiration = (
                _utc(expiry) if isinstance(expiry, datetime) else now + _UNKNOWN_EXPIRY_CLAIM
            )
            return Credentials(
                access_key_id=frozen.access_key,
                secret_access_key=frozen.secret_key,
                token=frozen.token,
                expiration=expiration,
                role_arn=role_arn,
                account_id=account_id or getattr(frozen, "account_id", None) or None,
            )
        self._last_operation = "GetSessionToken"
        sts = self._sts()
        if self.duration_seconds is None:
            answer = sts.get_session_token()
        else:
            answer = sts.get_session_token(DurationSeconds=self.duration_seconds)
        issued = answer["Credentials"]
        return Credentials(
            access_key_id=issued["AccessKeyId"],
            secret_access_key=issued["SecretAccessKey"],
            token=issued["SessionToken"],
            expiration=_utc(issued["Expiration"]),
            role_arn=role_arn,
            account_id=account_id,
        )

    def _caller_identity(self) -> tuple[str | None, str | None]:
        from botocore.exceptions import ClientError

        if self._identity is not None:
            return self._identity
        self._last_operation = "GetCallerIdentity"
        try:
            identity = self._sts().get_caller_identity()
        except ClientError as exc:
            code, _message, status = _error_fields(exc)
            if code not in _UNSUPPORTED_CODES and status != 501:
                raise
            logger.warning("this STS does not implement GetCallerIdentity: RoleArn left out")
            self._identity = (None, None)
            return self._identity
        self._identity = (_role_of(identity.get("Arn", "")), identity.get("Account") or None)
        return self._identity


def _check_duration(seconds: int | None, maximum: int, operation: str) -> None:
    if seconds is not None and not _MIN_DURATION <= seconds <= maximum:
        raise ConfigError(
            f"{operation} duration must be {_MIN_DURATION} to {maximum} seconds, not {seconds}",
            hint="STS refuses sessions shorter than 15 minutes",
        )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:  # botocore parses ISO times as aware; be safe anyway
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _role_of(caller_arn: str) -> str | None:
    # arn:aws:sts::123456789012:assumed-role/AppA/session -> arn:aws:iam::123456789012:role/AppA
    parts = caller_arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    partition, service, account, resource = parts[1], parts[2], parts[4], parts[5]
    if service == "sts" and resource.startswith("assumed-role/"):
        name = resource.split("/")[1]
        return f"arn:{partition}:iam::{account}:role/{name}" if name else None
    if service == "iam" and resource.startswith("role/"):
        return caller_arn
    return None


def _no_credentials() -> CredentialSourceError:
    return CredentialSourceError(
        "no AWS credentials found (boto3 looked in the environment, the shared files, SSO and"
        " the instance/container metadata)",
        code="NoCredentialsError",
        hint="set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), run aws sso"
        " login, or serve fake credentials with --fake",
    )


def _error_fields(exc: Any) -> tuple[str | None, str | None, int | None]:
    """Code, message and HTTP status of a ClientError.

    Some STS emulators (SeaweedFS) send S3-style XML errors, which botocore's query parser leaves
    outside ``Error``: look at the top level too.
    """
    code, message = error_code_and_message(exc)
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return (
        str(code) if code and code != "Unknown" else None,
        " ".join(str(message).split())[:_MESSAGE_LIMIT] if message else None,
        int(status) if isinstance(status, int) else None,
    )


def _describe(exc: Exception, operation: str) -> CredentialSourceError:
    """A botocore error as a :class:`CredentialSourceError` with a message that has no secrets."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return _no_credentials()
    if isinstance(exc, ConnectionError | HTTPClientError):
        # The message names the endpoint URL and the socket error; no credentials are in it.
        return CredentialSourceError(
            f"{_what(operation)} failed, endpoint not reachable: {exc}",
            operation=operation,
            code=type(exc).__name__,
            hint="check the network, or AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL if you set one",
            retryable=True,
        )
    if isinstance(exc, ClientError):
        code, message, status = _error_fields(exc)
        detail = ": ".join(part for part in (code, message) if part) or "no error details"
        status_text = f" (HTTP {status})" if status else ""
        return CredentialSourceError(
            f"{_what(operation)} failed: {detail}{status_text}",
            operation=operation,
            code=code,
            hint=_hint_for(operation, code),
            retryable=code in ("Throttling", "ThrottlingException", "ServiceUnavailable")
            or (status is not None and status >= 500),
        )
    # Other botocore errors (no region, bad parameter...) describe themselves without secrets.
    return CredentialSourceError(
        f"{_what(operation)} failed: {exc}", operation=operation, code=type(exc).__name__
    )


def _what(operation: str) -> str:
    return "loading your AWS credentials (boto3)" if operation == _CHAIN else f"STS {operation}"


def _hint_for(operation: str, code: str | None) -> str | None:
    if code in _BAD_CREDENTIALS_CODES:
        return _BAD_CREDENTIALS_HINT
    if operation == "GetSessionToken":
        return (
            "the endpoint must serve session credentials (with a token), and long-term keys"
            " become those only through GetSessionToken: use --role-arn ARN (AssumeRole),"
            " temporary credentials (AWS_SESSION_TOKEN, an SSO or role profile), or --fake"
        )
    if operation == "AssumeRole" and code == "AccessDenied":
        return (
            "the role's trust policy must allow your identity (aws sts get-caller-identity"
            " shows it), and your identity needs sts:AssumeRole on the role"
        )
    if operation == "AssumeRole" and code == "ValidationError":
        return "check the role ARN and --duration (at most the role's maximum session duration)"
    return None
