"""The S3 clients and s3transfer managers of one :class:`~taskcreds.upload.Uploader`.

Two of each, made on first use: one that may replace objects and one whose writes carry
``If-None-Match: *`` (:class:`~taskcreds.upload._hooks.NoOverwrite`). Every client is made for
the uploader's region, signs with the provider's credentials through a boto3 session (refreshed
once when S3 calls them expired) and records its responses in the uploader's ledger.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from taskcreds.errors import ConfigError
from taskcreds.provider import CredentialProvider
from taskcreds.upload._hooks import Ledger, NoOverwrite, RefreshOnExpired, RetryReporter
from taskcreds.upload._telemetry import UploadRecorder
from taskcreds.upload.options import MIN_PART_SIZE

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_s3 import S3Client
    from s3transfer.manager import TransferManager

    from taskcreds.upload._crt import CrtPut

#: A host name, IPv4 or bracketed IPv6 address, and an optional port.
_PLAIN_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d+)?"
)

#: Which engine sends single-request objects: the CRT where it can, or botocore always.
ENGINES = ("auto", "botocore")

__all__ = ["ClientSettings", "Clients"]

logger = logging.getLogger("taskcreds")


@dataclass(frozen=True)
class ClientSettings:
    """What every client and transfer manager of one uploader is made with."""

    endpoint_url: str | None
    region_name: str | None
    environ: Mapping[str, str]
    multipart_threshold: int
    part_size: int
    max_concurrency: int
    max_attempts: int
    retry_mode: str
    engine: str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(
                f"engine must be one of {', '.join(ENGINES)}, not {self.engine!r}",
                hint="'auto' sends small objects through the AWS CRT (botocore[crt]); "
                "'botocore' sends every request through botocore",
            )
        if self.part_size < MIN_PART_SIZE:
            raise ConfigError(
                f"part_size must be at least 5 MiB (S3's minimum), not {self.part_size}"
            )
        if self.max_concurrency < 1 or self.max_attempts < 1:
            raise ConfigError("max_concurrency and max_attempts must be at least 1")


class Clients:
    """Makes, keeps and closes the clients and managers (thread-safe)."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        ledger: Ledger,
        provider: Callable[[], CredentialProvider],
        session: boto3.Session | None,
        refresh: bool,
        sleep: Callable[[float], None],
        recorder: UploadRecorder,
    ) -> None:
        self._settings = settings
        self._ledger = ledger
        self._provider = provider
        self._session = session
        self._refresh = refresh
        self._sleep = sleep
        self._recorder = recorder
        self._lock = threading.Lock()
        self._clients: dict[bool, S3Client] = {}
        self._managers: dict[bool, TransferManager] = {}
        self._crt: CrtPut | None = None
        self._on_expired: RefreshOnExpired | None = None
        #: The CRT is used for credentials of a taskcreds provider only (a caller's session
        #: signs through botocore), and only when awscrt can be imported.
        self._crt_wanted = settings.engine == "auto" and session is None

    def client(self, *, overwrite: bool) -> S3Client:
        with self._lock:
            client = self._clients.get(overwrite)
            if client is None:
                client = self._clients[overwrite] = self._new_client(overwrite)
            return client

    def manager(self, *, overwrite: bool) -> TransferManager:
        client = self.client(overwrite=overwrite)
        with self._lock:
            manager = self._managers.get(overwrite)
            if manager is None:
                from s3transfer.manager import TransferConfig, TransferManager

                settings = self._settings
                config = TransferConfig(
                    multipart_threshold=settings.multipart_threshold,
                    multipart_chunksize=settings.part_size,
                    max_request_concurrency=settings.max_concurrency,
                    # Bounds memory for non-seekable streams: part size x concurrency.
                    max_in_memory_upload_chunks=settings.max_concurrency,
                )
                manager = self._managers[overwrite] = TransferManager(client, config)
            return manager

    def crt(self) -> CrtPut | None:
        """The CRT engine for single-request objects, or None where it is not used."""
        if not self._crt_wanted:
            return None
        if self._crt is not None:
            return self._crt
        endpoint_url, region = self._given_endpoint() or self._resolved_endpoint()
        with self._lock:
            if self._crt is None and self._crt_wanted:
                from taskcreds.upload._crt import CrtPut, crt_available

                if not crt_available():
                    self._crt_wanted = False
                    return None
                settings = self._settings
                try:
                    self._crt = CrtPut(
                        endpoint_url=endpoint_url,
                        path_style=self._path_style(),
                        region=region,
                        provider=self._provider,
                        max_attempts=settings.max_attempts,
                        refresh=self._expired_refresh().force,
                        ca_bundle=settings.environ.get("AWS_CA_BUNDLE"),
                    )
                except (RuntimeError, ValueError, TypeError) as exc:  # awscrt refused: botocore
                    logger.warning("the AWS CRT cannot be used here; botocore sends: %s", exc)
                    self._crt_wanted = False
            return self._crt

    def _given_endpoint(self) -> tuple[str, str] | None:
        """The endpoint and region the caller gave, when both were given: botocore would send
        to that URL, path-style, so no botocore client (a fifth of a second to make, most of
        it loading S3's service model) is needed to know where the CRT sends."""
        settings = self._settings
        endpoint, region = settings.endpoint_url, settings.region_name
        if not endpoint or not region:
            return None
        parts = urlsplit(endpoint)
        plain_host = _PLAIN_HOST.fullmatch(parts.netloc)
        if parts.scheme not in ("http", "https") or not plain_host or parts.query:
            return None  # anything unusual: botocore's client takes it, or says what is wrong
        return endpoint, region

    def _resolved_endpoint(self) -> tuple[str, str]:
        """Where botocore sends S3 requests from this uploader, and for which region."""
        client = self.client(overwrite=True)
        return client.meta.endpoint_url, client.meta.region_name or "us-east-1"

    def _path_style(self) -> bool:
        settings = self._settings
        return bool(
            settings.endpoint_url
            or settings.environ.get("AWS_ENDPOINT_URL_S3")
            or settings.environ.get("AWS_ENDPOINT_URL")
        )

    def close(self) -> None:
        """Shut the managers down (their threads) and close the clients (their connections)."""
        with self._lock:
            for manager in self._managers.values():
                manager.shutdown()
            for client in self._clients.values():
                client.close()
            self._managers.clear()
            self._clients.clear()
            self._crt = None  # the CRT client's threads end when it is collected

    def _new_client(self, overwrite: bool) -> S3Client:
        from botocore.config import Config

        settings = self._settings
        path_style = self._path_style()
        # botocore's "max_attempts" counts retries after the first try; "total_max_attempts" is
        # what max_attempts means here (and in fetch.py): every try, the first one included.
        retries: Any = {"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts}
        config = Config(
            retries=retries,
            # SigV4 for presigned URLs too: SeaweedFS refuses session tokens on SigV2 ones.
            signature_version="s3v4",
            max_pool_connections=settings.max_concurrency * 2 + 2,
            s3={"addressing_style": "path"} if path_style else None,
        )
        client = self._boto_session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region_name,
            config=config,
        )
        self._ledger.register(client.meta.events)
        RetryReporter(self._recorder).register(client.meta.events)
        if self._refresh:
            self._expired_refresh().register(client.meta.events)
        if not overwrite:
            NoOverwrite(sleep=self._sleep).register(client.meta.events)
        return client

    def _expired_refresh(self) -> RefreshOnExpired:
        """The one forced-refresh policy of every client and the CRT (made on first use: the
        default provider is resolved only then). Called with :attr:`_lock` held or from it."""
        if self._on_expired is None:
            self._on_expired = RefreshOnExpired(self._provider(), self._recorder)
        return self._on_expired

    def _boto_session(self) -> boto3.Session:
        if self._session is not None:
            return self._session
        from taskcreds.boto import session

        return session(
            provider=self._provider(),
            region_name=self._settings.region_name,
            environ=self._settings.environ,
        )
