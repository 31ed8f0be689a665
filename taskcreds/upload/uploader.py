"""The :class:`Uploader`: writes only under its bucket and prefix, with the task role's credentials.

The bytes go through the AWS CRT where it is faster (small objects and the parts of multipart
uploads: :mod:`._crt`) and through s3transfer otherwise (streams of unknown size, a caller's
session); botocore's standard retry mode handles 503 SlowDown and 5xx for what it sends. What this
module adds is the binding to one bucket and prefix, typed errors naming the refused IAM action,
``If-None-Match`` writes, a refresh and retry when S3 calls the credentials expired, and a
guarantee that a failed upload leaves no incomplete multipart upload behind (or logs its id when S3
refuses to abort it).

No-overwrite writes are retried on 409 ``ConditionalRequestConflict``; a 412 on a retry after an
attempt whose answer was lost is checked against the object S3 holds (its checksum), so the
uploader's own object is not reported as someone else's. ``upload_dir`` opens every file relative
to directory descriptors, never following a symlink swapped in after the listing, reports each
file as it settles (``on_file``), and with ``keep_going=False`` stops when its first file is
refused (access denied, no credentials): the rest would fail the same way.

The region of every client is the one resolution of :mod:`taskcreds._region` (the argument,
``AWS_REGION``, ``AWS_DEFAULT_REGION``, then boto3's configuration), also with a caller's session.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING

from taskcreds import environment as env
from taskcreds._region import region_from_environment
from taskcreds.errors import ConfigError, UploadError
from taskcreds.provider import CredentialProvider
from taskcreds.upload import _directory, _multipart, keys
from taskcreds.upload._clients import Clients, ClientSettings
from taskcreds.upload._errors import translate
from taskcreds.upload._hooks import Ledger
from taskcreds.upload._telemetry import UploadRecorder
from taskcreds.upload._transfer import ByteBudget, ByteCounter, send_locked
from taskcreds.upload.options import (
    CHECKSUM_ALGORITHMS,
    DEFAULT_CONCURRENCY,
    DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PART_SIZE,
    UploadOptions,
    checked_algorithm,
    resolve,
)
from taskcreds.upload.results import (
    DirectoryResult,
    IncompleteUpload,
    PlannedFile,
    UploadResult,
)

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_s3 import S3Client

    from taskcreds.telemetry import EventListener
    from taskcreds.upload.events import UploaderStats
    from taskcreds.upload.options import UploadOptionsDict

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = ["CHECKSUM_ALGORITHMS", "Uploader"]

OnFile = _directory.OnFile


class Uploader:
    """Uploads to one bucket, under one prefix, and nowhere else.

    ``bucket`` and ``prefix`` default to ``TASKCREDS_BUCKET`` and ``TASKCREDS_PREFIX``. A non-empty
    prefix always ends with ``/``. Credentials come from ``provider`` (default: the process-wide
    one) through a boto3 session, so a long upload keeps signing with fresh credentials.
    ``region_name`` defaults to ``AWS_REGION``, then ``AWS_DEFAULT_REGION`` (read from
    ``environ``), then boto3's configuration; a malformed value raises :class:`ConfigError`.

    Each upload method takes its options as an :class:`UploadOptions` (``options=``), as keyword
    arguments (``overwrite=False, content_type="text/csv"``), or both (the keywords win).

    ``engine="auto"`` sends small objects (one PutObject) and the parts of multipart uploads
    through the AWS CRT (signing, HTTP and retries in C: about a fifth of botocore's CPU per
    request) when the credentials are a taskcreds provider's; ``engine="botocore"`` sends every
    request through botocore. ``on_event`` receives the uploader's events
    (:mod:`taskcreds.upload.events`), counted by :meth:`stats`. What each path keeps is in
    docs/uploading.md ("Engines").
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
        engine: str = "auto",
        on_event: EventListener | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        bucket = bucket or environ.get(env.BUCKET, "")
        if not bucket:
            raise ConfigError(
                "no bucket: pass Uploader(bucket=...) or set TASKCREDS_BUCKET",
                hint="in the task definition: environment TASKCREDS_BUCKET=<the app's bucket>",
            )
        self.bucket = bucket
        self.prefix = keys.normalize_prefix(
            environ.get(env.PREFIX, "") if prefix is None else prefix, bucket=bucket
        )
        self.checksum_algorithm = checked_algorithm(checksum_algorithm)
        #: The region every client is made for; None: boto3's configuration decides.
        self.region_name, self.region_source = region_from_environment(region_name, environ)
        self._provider = provider
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._max_concurrency = max_concurrency
        #: Small bodies sent through the CRT are read whole: bounded like multipart parts.
        self._small_bodies = ByteBudget(part_size * max_concurrency)
        self._telemetry = UploadRecorder(bucket=bucket, prefix=self.prefix, on_event=on_event)
        self._ledger = Ledger(self._telemetry)
        #: How the uploader waits before retrying a 409 ConditionalRequestConflict (tests
        #: replace it).
        self._sleep: Callable[[float], None] = time.sleep
        self._key_locks = tuple(threading.Lock() for _ in range(256))
        settings = ClientSettings(
            endpoint_url=endpoint_url,
            region_name=self.region_name,
            environ=environ,
            multipart_threshold=multipart_threshold,
            part_size=part_size,
            max_concurrency=max_concurrency,
            max_attempts=max_attempts,
            retry_mode=retry_mode,
            engine=engine,
        )
        self._clients = Clients(
            settings,
            ledger=self._ledger,
            provider=self._provider_or_default,
            session=session,
            refresh=provider is not None or session is None,
            sleep=self._backoff,
            recorder=self._telemetry,
        )

    def __repr__(self) -> str:
        return f"Uploader(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # -- public API -----------------------------------------------------------------------------

    def key_for(self, relative_key: str) -> str:
        """The full key for ``relative_key``, or :class:`KeyOutsidePrefixError`."""
        return keys.join_key(self.prefix, relative_key, bucket=self.bucket)

    def upload_file(
        self,
        path: str | os.PathLike[str],
        key: str | None = None,
        options: UploadOptions | None = None,
        **kwargs: Unpack[UploadOptionsDict],
    ) -> UploadResult:
        """Upload one file; ``key`` defaults to the file's name (under the prefix)."""
        chosen = resolve(options, kwargs)
        source = Path(path)
        if not source.exists():
            raise UploadError(
                f"{source} does not exist",
                bucket=self.bucket,
                key=key,
                hint="check the path; a relative path is taken from the current directory",
            )
        if not source.is_file():
            raise UploadError(
                f"{source} is not a file",
                bucket=self.bucket,
                key=key,
                hint="upload_file takes a regular file; upload_dir takes a directory",
            )
        full_key = self.key_for(key if key is not None else source.name)
        size = source.stat().st_size
        chosen = chosen.with_defaults(name=source.name)
        return replace(self._transfer(str(source), full_key, size, chosen), path=str(source))

    def upload_bytes(
        self,
        data: bytes,
        key: str,
        options: UploadOptions | None = None,
        **kwargs: Unpack[UploadOptionsDict],
    ) -> UploadResult:
        """Upload ``data`` as one object."""
        chosen = resolve(options, kwargs).with_defaults(name=key)
        return self._transfer(io.BytesIO(data), self.key_for(key), len(data), chosen)

    def upload_fileobj(
        self,
        fileobj: IO[bytes],
        key: str,
        options: UploadOptions | None = None,
        **kwargs: Unpack[UploadOptionsDict],
    ) -> UploadResult:
        """Upload from a binary file object; non-seekable streams are read one part at a time."""
        chosen = resolve(options, kwargs).with_defaults(name=key)
        return self._transfer(fileobj, self.key_for(key), None, chosen)

    def plan_dir(
        self,
        path: str | os.PathLike[str],
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
    ) -> list[PlannedFile]:
        """The files ``upload_dir`` would consider, in path order, with their keys and sizes;
        nothing is sent (skip-unchanged, which asks S3, is not applied). A file whose name
        cannot be a key is left out (``upload_dir`` reports it as failed)."""
        return _directory.plan(self, Path(path), tuple(include), tuple(exclude))

    def upload_dir(
        self,
        path: str | os.PathLike[str],
        *,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        skip_unchanged: bool = True,
        dry_run: bool = False,
        on_file: OnFile | None = None,
        keep_going: bool = True,
        options: UploadOptions | None = None,
        **kwargs: Unpack[UploadOptionsDict],
    ) -> DirectoryResult:
        """Upload every file under ``path`` (relative paths become keys under the prefix).

        ``include``/``exclude`` are glob patterns on the relative path (``*.log``, ``tmp/*``);
        :meth:`plan_dir` lists the files they select. With ``skip_unchanged`` a file whose bytes
        the object already holds is skipped (checked by a SHA-256 stored in the object's
        metadata). ``on_file`` is called, in the caller's thread, with a :class:`FileEvent` as
        each file is skipped, planned, uploaded or fails. One file's failure does not stop the
        rest; with ``keep_going=False`` the first file is uploaded alone, and if it is refused
        (:class:`AccessDeniedError`) or finds no credentials, the others are not attempted
        (``not_attempted``): they would fail the same way.
        """
        return _directory.upload_dir(
            self,
            Path(path),
            include=tuple(include),
            exclude=tuple(exclude),
            skip_unchanged=skip_unchanged,
            dry_run=dry_run,
            on_file=on_file,
            keep_going=keep_going,
            options=resolve(options, kwargs),
        )

    def list_incomplete(self, older_than: timedelta = timedelta(0)) -> list[IncompleteUpload]:
        """Multipart uploads under this prefix started more than ``older_than`` ago."""
        return _multipart.list_incomplete(
            self._client(overwrite=True), self.bucket, self.prefix, older_than, self._translated
        )

    def abort_incomplete(
        self, older_than: timedelta = timedelta(hours=24)
    ) -> list[IncompleteUpload]:
        """Abort incomplete multipart uploads under this prefix older than ``older_than``.

        The default leaves a day for uploads still in progress elsewhere.
        """
        return _multipart.abort_incomplete(
            self._client(overwrite=True), self.list_incomplete(older_than), self._translated
        )

    def presigned_url(self, key: str, expires_in: int = 3600) -> str:
        """A URL that GETs the object without credentials, for ``expires_in`` seconds (or until
        the task role's session expires, whichever is first)."""
        full_key = self.key_for(key)
        return self._client(overwrite=True).generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": full_key}, ExpiresIn=expires_in
        )

    def stats(self) -> UploaderStats:
        """Counts of this uploader's events so far: requests sent again, credentials S3
        refused, multipart uploads aborted, aborts refused (:mod:`taskcreds.upload.events`)."""
        return self._telemetry.stats()

    def close(self) -> None:
        """Wait for nothing further and release the transfer threads and connections."""
        self._clients.close()

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one transfer ---------------------------------------------------------------------------

    def _transfer(
        self, source: str | IO[bytes], key: str, size: int | None, options: UploadOptions
    ) -> UploadResult:
        extra_args = options.extra_args(self.checksum_algorithm)
        counter = ByteCounter(options.progress)
        # The ledger is per key: two transfers to one key at once must not read each other's.
        with self._key_locks[hash(key) % len(self._key_locks)]:
            return send_locked(
                self,
                source,
                key,
                size,
                overwrite=options.overwrite,
                extra_args=extra_args,
                counter=counter,
            )

    def _clean_up_after_failure(self, key: str) -> None:
        """Abort any multipart upload this transfer started and s3transfer did not abort."""
        _multipart.clean_up_after_failure(
            self._client(overwrite=True), self._ledger, self.bucket, key, self._telemetry
        )

    def _translated(self, error: Exception, key: str | None) -> UploadError:
        return translate(error, bucket=self.bucket, key=key, prefix=self.prefix)

    # -- clients --------------------------------------------------------------------------------

    def _client(self, *, overwrite: bool) -> S3Client:
        return self._clients.client(overwrite=overwrite)

    def _backoff(self, seconds: float) -> None:
        self._sleep(seconds)  # looked up at each call: tests replace it

    def _provider_or_default(self) -> CredentialProvider:
        if self._provider is None:
            from taskcreds.provider import default_provider

            self._provider = default_provider()
        return self._provider
