"""Every error taskcreds raises, in one tree.

```
TaskCredsError
├── ConfigError (also ValueError)
│   ├── NotInContainerError          neither container variable is set
│   ├── UnsupportedHostError         FULL_URI host not allowed
│   ├── TokenError                   token file missing/unreadable, or CR/LF in the token
│   ├── DependencyMissingError       an optional extra is missing: .extra; hint: the pip command
│   │   └── WeedNotFoundError        no SeaweedFS `weed` binary (also a SeaweedError)
│   └── CredentialSourceError        taskcreds.local: serve-local's AWS source failed (.code)
├── EndpointError                    carries .url (never the token)
│   ├── EndpointUnreachableError     refused, reset, DNS, timeout
│   └── EndpointHTTPError            .status .code .message (agent JSON or text)
│       └── ThrottledError           429
├── MalformedResponseError           names the bad field, never echoes a secret
├── CredentialsExpiredError
├── InternalError                    a bug: something raised what it does not describe
├── UploadError
│   ├── AccessDeniedError            .bucket .key .action (the IAM action that was missing)
│   ├── ObjectExistsError            no-overwrite write found the key taken
│   └── KeyOutsidePrefixError (also ValueError)
└── SeaweedError (also RuntimeError) the local SeaweedFS (taskcreds_demo.seaweed) failed
    ├── SeaweedPortError             no free ports, or weed found them taken on every attempt
    └── WeedNotFoundError            (above: also a DependencyMissingError, so exit code 2)
```

Every class is defined here except ``CredentialSourceError``, which lives in
:mod:`taskcreds.local` (next to the sources that raise it) and derives from ``ConfigError``.
:mod:`taskcreds_demo.seaweed` re-exports the three SeaweedFS errors.

Every error has a one-line ``hint`` saying what to do about it, and ``retryable`` says whether
trying the same call again later can succeed. No message ever contains a secret key, a session
token or an authorization token: messages are built only from values known to be safe to show.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "CredentialsExpiredError",
    "DependencyMissingError",
    "EndpointError",
    "EndpointHTTPError",
    "EndpointUnreachableError",
    "InternalError",
    "KeyOutsidePrefixError",
    "MalformedResponseError",
    "NotInContainerError",
    "ObjectExistsError",
    "SeaweedError",
    "SeaweedPortError",
    "TaskCredsError",
    "ThrottledError",
    "TokenError",
    "UnsupportedHostError",
    "UploadError",
    "WeedNotFoundError",
]


class TaskCredsError(Exception):
    """Base class of every taskcreds error."""

    #: Whether the same call may succeed if tried again later.
    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: type, message, hint, retryable, and every attribute it
        carries (``status``, ``bucket``, ``action``...), for ``--json`` output and log fields.

        Every attribute of every error in this tree is safe to show (see the module docstring),
        so all public ones are included; unset (None) ones are left out.
        """
        document: dict[str, Any] = {
            "type": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "retryable": self.retryable,
        }
        for name, value in vars(self).items():
            if name.startswith("_") or name in document or value is None:
                continue
            if isinstance(value, str | int | float | bool):
                document[name] = value
            elif isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
                document[name] = list(value)
        return document


class ConfigError(TaskCredsError, ValueError):
    """The environment or the arguments describe no usable credentials endpoint."""


class NotInContainerError(ConfigError):
    """Neither ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` nor ``..._FULL_URI`` is set."""


class UnsupportedHostError(ConfigError):
    """``AWS_CONTAINER_CREDENTIALS_FULL_URI`` names a host taskcreds will not send a request to."""

    def __init__(
        self,
        message: str,
        *,
        host: str,
        allowed: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.host = host
        self.allowed = allowed


class TokenError(ConfigError):
    """The authorization token cannot be read, or would be unsafe to send as a header."""

    def __init__(self, message: str, *, source: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        #: Where the token comes from: a file path or a variable name, never the token.
        self.source = source


class EndpointError(TaskCredsError):
    """The credentials endpoint could not give credentials."""

    def __init__(self, message: str, *, url: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        #: The endpoint URL that was asked (it never contains the authorization token).
        self.url = url


class EndpointUnreachableError(EndpointError):
    """No HTTP response: connection refused or reset, name not resolved, or a timeout."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        url: str,
        reason: Literal["refused", "timeout", "reset", "dns", "other"] = "other",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, url=url, hint=hint)
        #: What went wrong at the network level, for ``doctor`` and for log filters.
        self.reason = reason


class EndpointHTTPError(EndpointError):
    """The endpoint answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int,
        code: str | None,
        detail: str | None,
        hint: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, url=url, hint=hint)
        self.status = status
        #: The agent's error code (``InvalidIdInRequest``...), or None for a plain-text error.
        self.code = code
        #: The agent's own message (JSON ``message`` or the plain-text body), shortened.
        self.detail = detail
        self.retryable = retryable


class ThrottledError(EndpointHTTPError):
    """HTTP 429: the agent's per-client rate limit (40 req/s steady, burst 60) was exceeded."""


class MalformedResponseError(TaskCredsError):
    """A 200 response whose body is not the credentials document the agent sends."""

    def __init__(self, message: str, *, field: str | None = None, url: str | None = None) -> None:
        super().__init__(
            message,
            hint="the endpoint is not an ECS/EKS credentials agent, or a proxy rewrote its answer",
        )
        #: The JSON field that was missing or wrong, when one is to blame.
        self.field = field
        self.url = url


class CredentialsExpiredError(TaskCredsError):
    """The cached credentials have expired and refreshing them failed (see ``__cause__``)."""

    retryable = True


class InternalError(TaskCredsError):
    """Something raised an exception that is not a taskcreds error: a bug, in taskcreds or in a
    credential source. ``__cause__`` holds the original.

    The provider treats one like any failed fetch (the cached set stays in use, the next try
    backs off, the prefetch thread lives on), so a parser bug cannot become an outage.
    """


class UploadError(TaskCredsError):
    """An upload to the app's bucket failed."""

    def __init__(
        self,
        message: str,
        *,
        bucket: str | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.bucket = bucket
        self.key = key


class AccessDeniedError(UploadError):
    """S3 refused the request: the task role lacks ``action`` on the bucket/key (or KMS key)."""

    def __init__(
        self,
        message: str,
        *,
        bucket: str | None,
        key: str | None,
        action: str | None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, bucket=bucket, key=key, hint=hint)
        self.action = action


class ObjectExistsError(UploadError):
    """``overwrite=False`` and the key is already taken."""


class KeyOutsidePrefixError(UploadError, ValueError):
    """The key would leave the uploader's bound prefix, or is not a safe S3 key."""


class DependencyMissingError(ConfigError):
    """An optional part of taskcreds (a pip extra, or the program it brings) is not installed.

    ``extra`` names the extra that brings it; the hint is the exact command that installs it.
    """

    def __init__(self, message: str, *, extra: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or f"pip install 'taskcreds[{extra}]'")
        #: The pip extra that brings what is missing (``"demo"``: ``taskcreds[demo]``).
        self.extra = extra


class SeaweedError(TaskCredsError, RuntimeError):
    """The local SeaweedFS (:mod:`taskcreds_demo.seaweed`) could not be found, started or driven.

    The message of a start-up failure ends with the last lines weed wrote.
    """


class SeaweedPortError(SeaweedError):
    """No free ports for weed on 127.0.0.1, or weed found them taken on every attempt."""

    retryable = True


class WeedNotFoundError(SeaweedError, DependencyMissingError):
    """No ``weed`` binary: ``$TASKCREDS_WEED`` is not an executable file, or (with it unset)
    there is none next to the interpreter or on PATH. The ``demo`` extra brings one."""

    def __init__(self, message: str, *, extra: str = "demo", hint: str | None = None) -> None:
        DependencyMissingError.__init__(self, message, extra=extra, hint=hint)
