"""boto3 sessions whose clients sign with the provider's current credentials.

Imported only when :func:`taskcreds.session` is called, so ``import taskcreds`` stays free of
boto3. The session's credential chain holds the provider and nothing else: when the container
variables are set, a client never falls back to static keys, a profile or the instance role.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
import botocore.credentials
import botocore.session

from taskcreds import environment as env
from taskcreds._region import region_from_environment
from taskcreds.provider import CredentialProvider

if TYPE_CHECKING:
    from botocore.credentials import ReadOnlyCredentials

__all__ = ["session"]

logger = logging.getLogger("taskcreds")

#: How botocore names where credentials came from (``session.get_credentials().method``).
METHOD = "taskcreds-container-role"


class _ProviderCredentials(botocore.credentials.RefreshableCredentials):
    """botocore refreshable credentials whose every read goes to the taskcreds provider.

    The provider owns caching and refresh timing; botocore's own 15/10-minute windows are bypassed
    (they would refresh short-lived sets on every call, botocore#2189).
    """

    def __init__(self, provider: CredentialProvider) -> None:  # no super(): nothing to stage
        self._provider = provider
        self.method = METHOD

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        current = self._provider.get()
        return botocore.credentials.ReadOnlyCredentials(
            current.access_key_id, current.secret_access_key, current.token, current.account_id
        )

    def refresh_needed(self, refresh_in: int | None = None) -> bool:
        return False  # the provider decides

    def _refresh(self) -> None:
        self._provider.get()

    @property
    def access_key(self) -> str:
        return self._provider.get().access_key_id

    @access_key.setter
    def access_key(self, value: str) -> None:
        raise AttributeError("taskcreds credentials are read-only")

    @property
    def secret_key(self) -> str:
        return self._provider.get().secret_access_key

    @secret_key.setter
    def secret_key(self, value: str) -> None:
        raise AttributeError("taskcreds credentials are read-only")

    @property
    def token(self) -> str:
        return self._provider.get().token

    @token.setter
    def token(self, value: str) -> None:
        raise AttributeError("taskcreds credentials are read-only")

    @property  # type: ignore[override]
    def account_id(self) -> str | None:
        # None, not "": botocore treats any string as a configured account id.
        return self._provider.get().account_id

    @account_id.setter
    def account_id(self, value: str | None) -> None:
        raise AttributeError("taskcreds credentials are read-only")

    def __repr__(self) -> str:
        return f"<taskcreds credentials from {self._provider!r}>"


class _OnlyProvider(botocore.credentials.CredentialProvider):
    """A one-link credential chain: the taskcreds provider."""

    METHOD = METHOD

    def __init__(self, provider: CredentialProvider) -> None:
        super().__init__()
        self._credentials = _ProviderCredentials(provider)

    def load(self) -> _ProviderCredentials:
        return self._credentials


def session(
    *,
    provider: CredentialProvider | None = None,
    region_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> boto3.Session:
    """A ``boto3.Session`` that signs with the task role's credentials, refreshed underneath.

    ``provider`` defaults to the process-wide one. Static ``AWS_ACCESS_KEY_ID`` keys are
    ignored (with a warning), as are profiles and the instance role: this session fails closed.
    The region is ``region_name``, else ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else boto3's
    configuration (see :mod:`taskcreds._region`).
    """
    environ = os.environ if environ is None else environ
    region_name, _ = region_from_environment(region_name, environ)
    if provider is None:
        from taskcreds.provider import default_provider

        provider = default_provider()
    if environ.get(env.ACCESS_KEY_ID):
        endpoint = getattr(provider.source, "endpoint", None)
        logger.warning(
            "%s is set but ignored: taskcreds signs with the credentials from %s",
            env.ACCESS_KEY_ID,
            endpoint.variable if endpoint is not None else repr(provider.source),
        )
    core: Any = botocore.session.Session()
    core.register_component(
        "credential_provider", botocore.credentials.CredentialResolver([_OnlyProvider(provider)])
    )
    return boto3.Session(botocore_session=core, region_name=region_name)
