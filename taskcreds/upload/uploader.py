"""The :class:`Uploader`: writes only under its bucket and prefix, with the task role's credentials.

The transfer itself is s3transfer's (multipart, concurrency, retries of parts); botocore's
standard retry mode handles 503 SlowDown and 5xx. What this module adds is the binding to one
bucket and prefix, typed errors naming the refused IAM action, ``If-None-Match`` writes, a refresh
and retry when S3 calls the credentials expired, and a guarantee that a failed upload leaves no
incomplete multipart upload behind (or logs its id when S3 refuses to abort it).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import logging
import mimetypes
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.subscribers import BaseSubscriber

from taskcreds import environment as env
from taskcreds._awserror import error_code_and_message
from taskcreds.errors import ConfigError, TaskCredsError, UploadError
from taskcreds.provider import CredentialProvider
from taskcreds.upload import keys
from taskcreds.upload._errors import translate
from taskcreds.upload._hooks import Ledger, NoOverwrite, RefreshOnExpired
from taskcreds.upload.results import DirectoryResult, FailedFile, IncompleteUpload, UploadResult

if TYPE_CHECKING:
    import boto3

__all__ = ["CHECKSUM_ALGORITHMS", "Uploader"]

logger = logging.getLogger("taskcreds")

CHECKSUM_ALGORITHMS = ("CRC32C", "CRC32", "SHA256", "CRC64NVME")
MiB = 1024 * 1024
#: s3transfer's defaults: 8 MiB parts, multipart from 8 MiB, 10 requests at once.
DEFAULT_MULTIPART_THRESHOLD = 8 * MiB
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_CONCURRENCY = 10
#: S3's own limits.
MIN_PART_SIZE = 5 * MiB
#: Stored with each object ``upload_dir`` writes, so an unchanged file can be skipped later.
SHA256_METADATA = "taskcreds-sha256"

_AWS_ERRORS = (ClientError, BotoCoreError)

Progress = Callable[[int], None]
"""Called with the number of bytes sent since the last call (negative after a retried part)."""


class Uploader:
    """Uploads to one bucket, under one prefix, and nowhere else.

    ``bucket`` and ``prefix`` default to ``TASKCREDS_BUCKET`` and ``TASKCREDS_PREFIX``. A non-empty
    prefix always ends with ``/``. Credentials come from ``provider`` (default: the process-wide
    one) through a boto3 session, so a long upload keeps signing with fresh credentials.
    """

    def __init__(
        self,
        bucket: str | None = None,
        prefix: str | None = None,
        *,
        provider: CredentialProvider | None = None,
        session: boto3.Session | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        environ: Mapping[str, str] | None = None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        checksum_algorithm: str = "CRC32C",
        max_attempts: int = 5,
        retry_mode: str = "standard",
    ) -> None:
        environ = os.environ if environ is None else environ
        bucket = bucket or environ.get(env.BUCKET, "")
        if not bucket:
            raise ConfigError(
                "no bucket: pass Uploader(bucket=...) or set TASKCREDS_BUCKET",
                hint="in the task definition: environment TASKCREDS_BUCKET=<the app's bucket>",
            )
        if part_size < MIN_PART_SIZE:
            raise ConfigError(f"part_size must be at least 5 MiB (S3's minimum), not {part_size}")
        if max_concurrency < 1 or max_attempts < 1:
            raise ConfigError("max_concurrency and max_attempts must be at least 1")
        self.bucket = bucket
        self.prefix = keys.normalize_prefix(
            environ.get(env.PREFIX, "") if prefix is None else prefix, bucket=bucket
        )
        self.checksum_algorithm = _checked_algorithm(checksum_algorithm)
        self._provider = provider
        self._session = session
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._environ = environ
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._max_concurrency = max_concurrency
        self._max_attempts = max_attempts
        self._retry_mode = retry_mode
        self._ledger = Ledger()
        self._lock = threading.Lock()
        self._key_locks = tuple(threading.Lock() for _ in range(256))
        self._clients: dict[bool, Any] = {}
        self._managers: dict[bool, Any] = {}

    def __repr__(self) -> str:
        return f"Uploader(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # -- public API -----------------------------------------------------------------------------

    def key_for(self, relative_key: str) -> str:
        """The full key for ``relative_key``, or :class:`KeyOutsidePrefixError`."""
        return keys.join_key(self.prefix, relative_key, bucket=self.bucket)

    def upload_file(
        self, path: str | os.PathLike[str], key: str | None = None, **options: Any
    ) -> UploadResult:
        """Upload one file; ``key`` defaults to the file's name (under the prefix)."""
        source = Path(path)
        if not source.is_file():
            raise UploadError(f"{source} is not a file", bucket=self.bucket, key=key)
        full_key = self.key_for(key if key is not None else source.name)
        size = source.stat().st_size
        options.setdefault("content_type", _guess_type(source.name))
        return self._transfer(str(source), full_key, size, options)

    def upload_bytes(self, data: bytes, key: str, **options: Any) -> UploadResult:
        """Upload ``data`` as one object."""
        full_key = self.key_for(key)
        options.setdefault("content_type", _guess_type(key))
        return self._transfer(io.BytesIO(data), full_key, len(data), options)

    def upload_fileobj(self, fileobj: IO[bytes], key: str, **options: Any) -> UploadResult:
        """Upload from a binary file object; non-seekable streams are read one part at a time."""
        full_key = self.key_for(key)
        options.setdefault("content_type", _guess_type(key))
        return self._transfer(fileobj, full_key, None, options)

    def upload_dir(
        self,
        path: str | os.PathLike[str],
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        skip_unchanged: bool = True,
        dry_run: bool = False,
        **options: Any,
    ) -> DirectoryResult:
        """Upload every file under ``path`` (relative paths become keys under the prefix).

        ``include``/``exclude`` are glob patterns on the relative path (``*.log``, ``tmp/*``).
        With ``skip_unchanged`` a file whose bytes the object already holds is skipped (checked
        by a SHA-256 stored in the object's metadata). One file's failure does not stop the rest.
        """
        root = Path(path)
        if not root.is_dir():
            raise UploadError(f"{root} is not a directory", bucket=self.bucket)
        result = DirectoryResult(dry_run=dry_run)
        planned = list(self._plan_directory(root, tuple(include), tuple(exclude), result))
        digests = self._unchanged_check(planned, result) if skip_unchanged else {}
        settled = {*result.skipped, *(failed.key for failed in result.failed)}
        todo = [item for item in planned if item[1] not in settled]
        if dry_run:
            result.planned.extend(key for _, key in todo)
            return result
        self._upload_many(todo, digests, options, result)
        return result

    def list_incomplete(self, older_than: timedelta = timedelta(0)) -> list[IncompleteUpload]:
        """Multipart uploads under this prefix started more than ``older_than`` ago."""
        cutoff = datetime.now(timezone.utc) - older_than
        found = []
        try:
            paginator = self._client(overwrite=True).get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    initiated = upload["Initiated"].astimezone(timezone.utc)
                    if initiated <= cutoff:
                        found.append(
                            IncompleteUpload(
                                self.bucket, upload["Key"], upload["UploadId"], initiated
                            )
                        )
        except _AWS_ERRORS as exc:
            raise self._translated(exc, None) from exc
        return found

    def abort_incomplete(
        self, older_than: timedelta = timedelta(hours=24)
    ) -> list[IncompleteUpload]:
        """Abort incomplete multipart uploads under this prefix older than ``older_than``.

        The default leaves a day for uploads still in progress elsewhere.
        """
        aborted = []
        for upload in self.list_incomplete(older_than):
            try:
                self._client(overwrite=True).abort_multipart_upload(
                    Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id
                )
            except _AWS_ERRORS as exc:
                raise self._translated(exc, upload.key) from exc
            aborted.append(upload)
        return aborted

    def presigned_url(self, key: str, expires_in: int = 3600) -> str:
        """A URL that GETs the object without credentials, for ``expires_in`` seconds (or until
        the task role's session expires, whichever is first)."""
        full_key = self.key_for(key)
        url: str = self._client(overwrite=True).generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": full_key}, ExpiresIn=expires_in
        )
        return url

    def close(self) -> None:
        """Wait for nothing further and release the transfer threads and connections."""
        with self._lock:
            for manager in self._managers.values():
                manager.shutdown()
            for client in self._clients.values():
                client.close()
            self._managers.clear()
            self._clients.clear()

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one transfer ---------------------------------------------------------------------------

    def _transfer(
        self, source: str | IO[bytes], key: str, size: int | None, options: dict[str, Any]
    ) -> UploadResult:
        overwrite = bool(options.pop("overwrite", True))
        progress: Progress | None = options.pop("progress", None)
        algorithm = _checked_algorithm(options.get("checksum_algorithm") or self.checksum_algorithm)
        extra_args = self._extra_args(options, algorithm)
        counter = _ByteCounter(progress)
        # The ledger is per key: two transfers to one key at once must not read each other's.
        with self._key_locks[hash(key) % len(self._key_locks)]:
            return self._transfer_locked(
                source, key, size, overwrite=overwrite, extra_args=extra_args, counter=counter
            )

    def _transfer_locked(
        self,
        source: str | IO[bytes],
        key: str,
        size: int | None,
        *,
        overwrite: bool,
        extra_args: dict[str, Any],
        counter: _ByteCounter,
    ) -> UploadResult:
        algorithm = extra_args["ChecksumAlgorithm"]
        self._ledger.forget(key)
        try:
            if size is not None and size < self._multipart_threshold:
                response = self._put_small(source, key, extra_args, overwrite)
                counter.add(size)
            else:
                self._manager(overwrite).upload(
                    source, self.bucket, key, extra_args, [counter]
                ).result()
                response = self._ledger.take_response(key)
        except BaseException as exc:
            self._clean_up_after_failure(key)
            if isinstance(exc, TaskCredsError):
                raise
            if isinstance(exc, Exception):
                raise self._translated(exc, key) from exc
            raise
        multipart = self._ledger.was_multipart(key)
        self._ledger.forget(key)
        checksum = response.get(f"Checksum{algorithm}")
        return UploadResult(
            bucket=self.bucket,
            key=key,
            size=size if size is not None else counter.total,
            etag=response.get("ETag"),
            version_id=response.get("VersionId"),
            checksum_algorithm=algorithm if checksum else None,
            checksum=checksum,
            multipart=multipart,
        )

    def _put_small(
        self, source: str | IO[bytes], key: str, extra_args: dict[str, Any], overwrite: bool
    ) -> dict[str, Any]:
        """One PutObject, without s3transfer's task machinery: for small objects that machinery
        costs more CPU than the request itself (benchmark P5)."""
        client = self._client(overwrite=overwrite)
        if isinstance(source, str):
            with open(source, "rb") as body:
                response: dict[str, Any] = client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, **extra_args
                )
        else:
            response = client.put_object(Bucket=self.bucket, Key=key, Body=source, **extra_args)
        return response

    def _extra_args(self, options: dict[str, Any], algorithm: str) -> dict[str, Any]:
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise TypeError(f"unknown upload option(s): {', '.join(sorted(unknown))}")
        extra: dict[str, Any] = {"ChecksumAlgorithm": algorithm}
        if options.get("content_type"):
            extra["ContentType"] = options["content_type"]
        if options.get("metadata"):
            extra["Metadata"] = dict(options["metadata"])
        if options.get("tags"):
            extra["Tagging"] = urlencode(dict(options["tags"]))
        if options.get("storage_class"):
            extra["StorageClass"] = options["storage_class"]
        sse = options.get("sse")
        if sse:
            if sse not in ("AES256", "aws:kms"):
                raise ConfigError(f"sse must be 'AES256' or 'aws:kms', not {sse!r}")
            extra["ServerSideEncryption"] = sse
            if options.get("kms_key_id"):
                extra["SSEKMSKeyId"] = options["kms_key_id"]
        elif options.get("kms_key_id"):
            raise ConfigError("kms_key_id needs sse='aws:kms'")
        return extra

    def _clean_up_after_failure(self, key: str) -> None:
        """Abort any multipart upload this transfer started and s3transfer did not abort."""
        for upload_id in self._ledger.open_uploads(key):
            try:
                self._client(overwrite=True).abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
            except (*_AWS_ERRORS, TaskCredsError) as exc:
                code = error_code_and_message(exc)[0]
                if code != "NoSuchUpload":
                    logger.error(
                        "could not abort multipart upload %s of s3://%s/%s (%s); it keeps costing "
                        "storage until aborted: uploader.abort_incomplete() or a lifecycle rule",
                        upload_id,
                        self.bucket,
                        key,
                        exc,
                    )
        self._ledger.forget(key)

    def _translated(self, error: Exception, key: str | None) -> UploadError:
        return translate(error, bucket=self.bucket, key=key)

    # -- directories ----------------------------------------------------------------------------

    def _plan_directory(
        self,
        root: Path,
        include: tuple[str, ...],
        exclude: tuple[str, ...],
        result: DirectoryResult,
    ) -> Iterator[tuple[Path, str]]:
        for path in sorted(_files_under(root)):
            try:
                relative = keys.relative_key_for_path(root, path)
            except TaskCredsError as exc:
                result.failed.append(FailedFile(str(path), None, str(exc), type(exc).__name__))
                continue
            if include and not any(fnmatch.fnmatchcase(relative, p) for p in include):
                continue
            if any(fnmatch.fnmatchcase(relative, p) for p in exclude):
                continue
            try:
                yield path, self.key_for(relative)
            except TaskCredsError as exc:
                result.failed.append(FailedFile(str(path), None, str(exc), type(exc).__name__))

    def _unchanged_check(
        self, planned: list[tuple[Path, str]], result: DirectoryResult
    ) -> dict[str, str]:
        """SHA-256 of each file; keys whose object already holds those bytes go to skipped."""

        def check(item: tuple[Path, str]) -> tuple[str, str | FailedFile, bool]:
            path, key = item
            try:
                digest = _sha256(path)
            except OSError as exc:  # vanished or unreadable: this file fails, the rest go on
                return key, FailedFile(str(path), key, str(exc), type(exc).__name__), False
            return key, digest, self._remote_digest(key) == digest

        digests = {}
        with ThreadPoolExecutor(self._max_concurrency) as pool:
            for key, digest, unchanged in pool.map(check, planned):
                if isinstance(digest, FailedFile):
                    result.failed.append(digest)
                    continue
                digests[key] = digest
                if unchanged:
                    result.skipped.append(key)
        return digests

    def _remote_digest(self, key: str) -> str | None:
        try:
            head = self._client(overwrite=True).head_object(Bucket=self.bucket, Key=key)
        except _AWS_ERRORS:  # missing, or no s3:GetObject: upload it either way
            return None
        digest: str | None = head.get("Metadata", {}).get(SHA256_METADATA)
        return digest

    def _upload_many(
        self,
        todo: list[tuple[Path, str]],
        digests: Mapping[str, str],
        options: dict[str, Any],
        result: DirectoryResult,
    ) -> None:
        def one(item: tuple[Path, str]) -> UploadResult | FailedFile:
            path, key = item
            per_file = dict(options)
            per_file.setdefault("content_type", _guess_type(path.name))
            try:
                metadata = dict(per_file.get("metadata") or {})
                metadata[SHA256_METADATA] = digests.get(key) or _sha256(path)
                per_file["metadata"] = metadata
                return self._transfer(str(path), key, path.stat().st_size, per_file)
            except (TaskCredsError, OSError) as exc:
                return FailedFile(str(path), key, str(exc), type(exc).__name__)

        # Files are uploaded a few at a time; each one's parts share the transfer manager's pool.
        with ThreadPoolExecutor(self._max_concurrency) as pool:
            for outcome in pool.map(one, todo):
                if isinstance(outcome, UploadResult):
                    result.uploaded.append(outcome)
                else:
                    result.failed.append(outcome)

    # -- clients --------------------------------------------------------------------------------

    def _client(self, *, overwrite: bool) -> Any:
        with self._lock:
            client = self._clients.get(overwrite)
            if client is None:
                client = self._clients[overwrite] = self._new_client(overwrite)
            return client

    def _manager(self, overwrite: bool) -> Any:
        client = self._client(overwrite=overwrite)
        with self._lock:
            manager = self._managers.get(overwrite)
            if manager is None:
                from s3transfer.manager import TransferConfig, TransferManager

                config = TransferConfig(
                    multipart_threshold=self._multipart_threshold,
                    multipart_chunksize=self._part_size,
                    max_request_concurrency=self._max_concurrency,
                    # Bounds memory for non-seekable streams: part size x concurrency.
                    max_in_memory_upload_chunks=self._max_concurrency,
                )
                manager = self._managers[overwrite] = TransferManager(client, config)
            return manager

    def _new_client(self, overwrite: bool) -> Any:
        from botocore.config import Config

        session = self._boto_session()
        path_style = bool(
            self._endpoint_url
            or self._environ.get("AWS_ENDPOINT_URL_S3")
            or self._environ.get("AWS_ENDPOINT_URL")
        )
        # botocore's "max_attempts" counts retries after the first try; "total_max_attempts" is
        # what max_attempts means here (and in fetch.py): every try, the first one included.
        retries: Any = {"mode": self._retry_mode, "total_max_attempts": self._max_attempts}
        config = Config(
            retries=retries,
            # SigV4 for presigned URLs too: SeaweedFS refuses session tokens on SigV2 ones.
            signature_version="s3v4",
            max_pool_connections=self._max_concurrency * 2 + 2,
            s3={"addressing_style": "path"} if path_style else None,
        )
        client = session.client(
            "s3", endpoint_url=self._endpoint_url, region_name=self._region_name, config=config
        )
        self._ledger.register(client.meta.events)
        if self._provider is not None or self._session is None:
            RefreshOnExpired(self._provider_or_default()).register(client.meta.events)
        if not overwrite:
            NoOverwrite().register(client.meta.events)
        return client

    def _boto_session(self) -> Any:
        if self._session is not None:
            return self._session
        from taskcreds.boto import session

        return session(
            provider=self._provider_or_default(),
            region_name=self._region_name,
            environ=self._environ,
        )

    def _provider_or_default(self) -> CredentialProvider:
        if self._provider is None:
            from taskcreds.provider import _get_default_provider

            self._provider = _get_default_provider()
        return self._provider


_OPTION_NAMES = frozenset(
    {
        "content_type",
        "metadata",
        "tags",
        "storage_class",
        "sse",
        "kms_key_id",
        "checksum_algorithm",
    }
)


class _ByteCounter(BaseSubscriber):
    """An s3transfer subscriber that totals bytes sent and forwards them to a callback."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self.total = 0

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self.add(bytes_transferred)

    def add(self, count: int) -> None:
        with self._lock:
            self.total += count
        if self._progress is not None:
            self._progress(count)


def _checked_algorithm(name: str) -> str:
    upper = name.upper()
    if upper not in CHECKSUM_ALGORITHMS:
        raise ConfigError(
            f"checksum algorithm {name!r} is not one of {', '.join(CHECKSUM_ALGORITHMS)}"
        )
    return upper


def _guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def _files_under(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root, followlinks=False):
        for name in names:
            path = Path(directory, name)
            if path.is_file():
                yield path
