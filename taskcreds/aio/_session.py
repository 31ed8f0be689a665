"""aiobotocore sessions whose clients sign with the provider's current credentials.

The asyncio twin of :mod:`taskcreds.boto`: the session's credential chain holds the taskcreds
provider and nothing else, so a client never falls back to static keys, a profile or the
instance role (fail-closed), and every request is signed with the set the provider holds at that
moment (``await provider.get()``: never blocking the loop). aiobotocore is imported only here,
when :func:`session` is called (``pip install 'taskcreds[aio]'``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from taskcreds import environment as env
from taskcreds._region import region_from_environment
from taskcreds.aio._provider import AsyncCredentialProvider
from taskcreds.errors import DependencyMissingError
from taskcreds.provider import CredentialProvider

__all__ = ["METHOD", "session"]

logger = logging.getLogger("taskcreds")

#: How aiobotocore names where credentials came from (as taskcreds.boto names it for botocore).
METHOD = "taskcreds-container-role"


def session(
    *,
    provider: AsyncCredentialProvider | CredentialProvider | None = None,
    region_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """An aiobotocore ``AioSession`` that signs with the task role's credentials.

    ``provider`` defaults to an :class:`AsyncCredentialProvider` around the process-wide
    provider. Static ``AWS_ACCESS_KEY_ID`` keys are ignored (with a warning), as are profiles
    and the instance role. The region is resolved as for :func:`taskcreds.session`. Use it as
    aioboto3 users do: ``async with session.create_client("s3") as s3``.
    """
    try:
        from aiobotocore.credentials import AioCredentialResolver
        from aiobotocore.session import AioSession
    except ImportError as exc:
        raise DependencyMissingError(
            "taskcreds.aio.session() needs aiobotocore", extra="aio"
        ) from exc
    environ = os.environ if environ is None else environ
    region_name, _ = region_from_environment(region_name, environ)
    wrapped = _async(provider)
    if environ.get(env.ACCESS_KEY_ID):
        logger.warning(
            "%s is set but ignored: taskcreds signs with the credentials from %r",
            env.ACCESS_KEY_ID,
            wrapped.provider.source,
        )
    core = AioSession()
    core.register_component("credential_provider", AioCredentialResolver([_only_provider(wrapped)]))
    if region_name:
        core.set_config_variable("region", region_name)
    return core


def _async(
    provider: AsyncCredentialProvider | CredentialProvider | None,
) -> AsyncCredentialProvider:
    if isinstance(provider, AsyncCredentialProvider):
        return provider
    if provider is None:
        from taskcreds.provider import default_provider

        provider = default_provider()
    return AsyncCredentialProvider.wrap(provider)


def _only_provider(provider: AsyncCredentialProvider) -> Any:
    """A one-link aiobotocore credential chain: the taskcreds provider."""
    import botocore.credentials
    from aiobotocore.credentials import AioRefreshableCredentials

    class ProviderCredentials(AioRefreshableCredentials):  # type: ignore[misc]
        """Every read goes to the provider, which owns caching and refresh timing
        (aiobotocore's own windows would refresh short sets on every call)."""

        def __init__(self) -> None:  # no super(): nothing to stage, no lock of its own
            self.method = METHOD

        async def get_frozen_credentials(self) -> Any:
            current = await provider.get()
            return botocore.credentials.ReadOnlyCredentials(
                current.access_key_id, current.secret_access_key, current.token, current.account_id
            )

        async def get_access_key(self) -> str:
            return (await provider.get()).access_key_id

        async def get_secret_key(self) -> str:
            return (await provider.get()).secret_access_key

        async def get_token(self) -> str:
            return (await provider.get()).token

        async def get_account_id(self) -> str | None:
            return (await provider.get()).account_id

        def refresh_needed(self, refresh_in: int | None = None) -> bool:
            return False  # the provider decides

        def __repr__(self) -> str:
            return f"<taskcreds credentials from {provider!r}>"

    class OnlyProvider(botocore.credentials.CredentialProvider):
        METHOD = METHOD

        def __init__(self) -> None:
            super().__init__()
            self._credentials = ProviderCredentials()

        async def load(self) -> Any:
            return self._credentials

    return OnlyProvider()
