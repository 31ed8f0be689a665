"""What the local endpoint hands out: a :class:`~taskcreds.sources.CredentialSource`, or any
callable that returns :class:`Credentials` (a provider's ``get``, a test's function).

:class:`StaticSource` (the core's) always answers with one set. :class:`RotatingSource` mints
fake sets that look like STS session credentials and replaces each one once half its lifetime has
passed, as the ECS agent does with the real ones (it refreshes a task's credentials well before
they expire).
"""

from __future__ import annotations

import base64
import secrets
import string
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from taskcreds._time import Clock, utc_now
from taskcreds.credentials import Credentials, account_from_arn
from taskcreds.sources import CredentialSource, StaticSource

__all__ = [
    "DEFAULT_ROLE_ARN",
    "CredentialSource",
    "RotatingSource",
    "ServedSource",
    "StaticSource",
    "as_callable",
]

#: The role fake credentials claim to belong to when none is named.
DEFAULT_ROLE_ARN = "arn:aws:iam::123456789012:role/taskcreds-local"

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
# STS session tokens are a few hundred bytes of base64; clients must not assume less.
_TOKEN_BYTES = 300

ServedSource = CredentialSource | Callable[[], Credentials]
"""What :class:`~taskcreds.local.AgentServer` asks, once per request, for the set to send."""


def as_callable(source: ServedSource) -> Callable[[], Credentials]:
    """The function to call per request: a source's ``fetch``, or the callable itself."""
    fetch = getattr(source, "fetch", None)
    return fetch if callable(fetch) else source  # type: ignore[return-value]


class RotatingSource:
    """Fake role credentials: a fresh set whenever the current one is past half its lifetime.

    Each set expires ``lifetime`` seconds after it was minted (whole seconds, as the agent
    writes ``Expiration``). ``clock`` makes rotation deterministic in tests.
    """

    def __init__(
        self,
        *,
        role_arn: str = DEFAULT_ROLE_ARN,
        account_id: str | None = None,
        lifetime: float = 3600.0,
        clock: Clock = utc_now,
    ) -> None:
        self.role_arn = role_arn
        self.account_id = account_id or account_from_arn(role_arn)
        self.lifetime = lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Credentials | None = None
        self._minted_at: datetime | None = None
        self._minted = 0

    @property
    def lifetime(self) -> float:
        """Seconds each new set is valid for; a change applies from the next set minted."""
        return self._lifetime

    @lifetime.setter
    def lifetime(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("lifetime must be positive")
        self._lifetime = seconds

    @property
    def minted(self) -> int:
        """How many sets have been minted so far."""
        return self._minted

    def __call__(self) -> Credentials:
        now = self._clock()
        with self._lock:
            if self._current is None or self._is_stale(now):
                self._current = self._mint(now)
            return self._current

    fetch = __call__

    def close(self) -> None:
        """Nothing to release."""

    def reset_after_fork(self) -> None:
        """A forked child keeps minting on its own."""

    def rotate(self) -> Credentials:
        """Mint a new set now, whatever the age of the current one (an early rotation)."""
        with self._lock:
            self._current = self._mint(self._clock())
            return self._current

    def _is_stale(self, now: datetime) -> bool:
        assert self._minted_at is not None
        return now - self._minted_at >= timedelta(seconds=self._lifetime / 2)

    def _mint(self, now: datetime) -> Credentials:
        self._minted_at = now
        self._minted += 1
        expiration = (now + timedelta(seconds=self._lifetime)).replace(microsecond=0)
        return Credentials(
            access_key_id="ASIA" + _random_text(_KEY_ALPHABET, 16),
            secret_access_key=_random_text(_SECRET_ALPHABET, 40),
            token=base64.b64encode(secrets.token_bytes(_TOKEN_BYTES)).decode("ascii"),
            expiration=expiration.astimezone(timezone.utc),
            role_arn=self.role_arn,
            account_id=self.account_id,
        )


def _random_text(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))
