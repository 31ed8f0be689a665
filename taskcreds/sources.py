"""Where credentials come from: the :class:`CredentialSource` seam, and the container endpoint.

A source does one fetch: it returns a :class:`~taskcreds.credentials.Credentials` set or raises a
:class:`~taskcreds.errors.TaskCredsError`. It keeps no cache and has no refresh policy of its own:
:class:`~taskcreds.provider.CredentialProvider` caches any source with the one policy of the
whole code base (``CredentialProvider.from_source(source)``). The container endpoint is one
source (:class:`EndpointSource`); serve-local's STS calls are others; :class:`StaticSource` is the
one for tests and for code that already holds a set.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

import requests

from taskcreds._time import Monotonic, Sleep
from taskcreds.credentials import Credentials
from taskcreds.endpoint import Endpoint, Resolver, resolve_endpoint, system_resolver
from taskcreds.fetch import DEFAULT_DEADLINE, Fetcher, FetchResult

__all__ = ["CredentialSource", "EndpointFetcher", "EndpointSource", "StaticSource"]


@runtime_checkable
class CredentialSource(Protocol):
    """Anything that can fetch one set of credentials.

    ``fetch()`` returns a set or raises a ``TaskCredsError`` (anything else it raises is treated
    as a bug: the provider wraps it in ``InternalError`` and keeps going). ``close()`` releases
    connections; the source may be fetched from again afterwards. ``reset_after_fork()`` is
    called in a forked child, before any fetch there: drop whatever is shared with the parent
    (pooled sockets).
    """

    def fetch(self) -> Credentials: ...

    def close(self) -> None: ...

    def reset_after_fork(self) -> None: ...


class EndpointFetcher(Protocol):
    """What :class:`EndpointSource` needs of a fetcher; :class:`~taskcreds.fetch.Fetcher` is one."""

    deadline: float

    def fetch(self, endpoint: Endpoint) -> FetchResult: ...

    def close(self) -> None: ...

    def reset_after_fork(self) -> None: ...


class EndpointSource:
    """The container-credentials endpoint the environment names (ECS agent, Pod Identity, ...).

    Resolves the endpoint now (``environ`` defaults to ``os.environ``, read now, not at import)
    and fetches from it with a :class:`~taskcreds.fetch.Fetcher` whose ``timeout`` bounds one
    whole fetch, retries included.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        allowed_hosts: Iterable[str] = (),
        timeout: float = DEFAULT_DEADLINE,
        session: requests.Session | None = None,
        resolver: Resolver = system_resolver,
        sleep: Sleep = time.sleep,
        monotonic: Monotonic = time.monotonic,
        fetcher: EndpointFetcher | None = None,
    ) -> None:
        self.endpoint: Endpoint = resolve_endpoint(
            environ, allowed_hosts=allowed_hosts, resolver=resolver, timeout=timeout
        )
        self._fetcher: EndpointFetcher = fetcher or Fetcher(
            session=session, deadline=timeout, sleep=sleep, monotonic=monotonic
        )
        #: What the last successful fetch learned (attempts, elapsed, the server's Date).
        self.last_result: FetchResult | None = None

    @property
    def deadline(self) -> float:
        """Seconds one fetch may take, retries included."""
        return self._fetcher.deadline

    def __repr__(self) -> str:
        return f"EndpointSource({self.endpoint.display_url!r})"

    def fetch(self) -> Credentials:
        result = self._fetcher.fetch(self.endpoint)
        self.last_result = result
        return result.credentials

    def close(self) -> None:
        self._fetcher.close()

    def reset_after_fork(self) -> None:
        self._fetcher.reset_after_fork()


class StaticSource:
    """Always the same set: for tests, and for code that already holds credentials.

    Assign :attr:`credentials` to change what the next fetch returns.
    """

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def __repr__(self) -> str:
        return f"StaticSource({self.credentials!r})"

    def fetch(self) -> Credentials:
        return self.credentials

    def __call__(self) -> Credentials:
        return self.credentials

    def close(self) -> None:
        """Nothing to release."""

    def reset_after_fork(self) -> None:
        """Nothing is shared with the parent."""
