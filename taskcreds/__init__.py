"""taskcreds: the task role's credentials inside ECS tasks and EKS pods, and an uploader bound to
the app's own bucket.

``import taskcreds`` does not import boto3; :func:`session` imports it when first called.
:mod:`taskcreds.telemetry` holds the providers' stats, events and listeners.
"""

# No ``from __future__ import annotations`` and no bare typing names here: every public name of
# this module is in ``__all__``, and tests/unit/test_public_api.py checks that nothing leaks.
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from taskcreds._version import __version__
from taskcreds.credentials import Credentials
from taskcreds.endpoint import Endpoint, TokenSource, resolve_endpoint
from taskcreds.errors import (
    AccessDeniedError,
    ConfigError,
    CredentialsExpiredError,
    EndpointError,
    EndpointHTTPError,
    EndpointUnreachableError,
    InternalError,
    KeyOutsidePrefixError,
    MalformedResponseError,
    NotInContainerError,
    ObjectExistsError,
    TaskCredsError,
    ThrottledError,
    TokenError,
    UnsupportedHostError,
    UploadError,
)
from taskcreds.provider import CredentialProvider, default_provider, get_credentials

if _TYPE_CHECKING:
    import boto3

    from taskcreds.broker import Broker
    from taskcreds.upload import Uploader

__all__ = [
    "AccessDeniedError",
    "Broker",
    "ConfigError",
    "CredentialProvider",
    "Credentials",
    "CredentialsExpiredError",
    "Endpoint",
    "EndpointError",
    "EndpointHTTPError",
    "EndpointUnreachableError",
    "InternalError",
    "KeyOutsidePrefixError",
    "MalformedResponseError",
    "NotInContainerError",
    "ObjectExistsError",
    "TaskCredsError",
    "ThrottledError",
    "TokenError",
    "TokenSource",
    "UnsupportedHostError",
    "UploadError",
    "Uploader",
    "__version__",
    "default_provider",
    "get_credentials",
    "resolve_endpoint",
    "session",
]


def session(
    *, provider: CredentialProvider | None = None, region_name: str | None = None, **kwargs: _Any
) -> "boto3.Session":
    """A ``boto3.Session`` signing with the task role's credentials (see :mod:`taskcreds.boto`)."""
    from taskcreds.boto import session as _session

    return _session(provider=provider, region_name=region_name, **kwargs)


def __getattr__(name: str) -> _Any:
    # The uploader needs boto3 and s3transfer; load them only when it is asked for.
    if name == "Uploader":
        from taskcreds.upload import Uploader

        return Uploader
    if name == "Broker":  # the HTTP server modules load only for the broker
        from taskcreds.broker import Broker

        return Broker
    raise AttributeError(f"module 'taskcreds' has no attribute {name!r}")
