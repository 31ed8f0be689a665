"""The :class:`Uploader`: writes only under its bucket and prefix, with the task role's credentials.

The transfer itself is s3transfer's (multipart, concurrency, retries of parts); botocore's
standard retry mode handles 503 SlowDown and 5xx. What this module adds is the binding to one
bucket and prefix, typed errors naming the refused IAM action, ``If-None-Match`` writes, a refresh
and retry when S3 calls the credentials expired, and a guarantee that a failed upload leaves no
incomplete multipart upload behind (or logs its id when S3 refuses to abort it).

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

import errno
import fnmatch
import hashlib
import io
import logging
import mimetypes
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.subscribers import BaseSubscriber

from taskcreds import environment as env
from taskcreds._awserror import error_code_and_message
from taskcreds._region import region_from_environment
from taskcreds.errors import AccessDeniedError, ConfigError, TaskCredsError, UploadError
from taskcreds.provider import CredentialProvider
from taskcreds.upload import keys
from taskcreds.upload._checksums import composite_checksum, multipart_etag
from taskcreds.upload._errors import translate
from taskcreds.upload._hooks import Ledger, NoOverwrite, RefreshOnExpired, Unconfirmed
from taskcreds.upload.results import (
    DirectoryResult,
    FailedFile,
    FileEvent,
    FileStatus,
    IncompleteUpload,
    UploadResult,
)

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
OnFile = Callable[[FileEvent], None]
"""Called by ``upload_dir`` in the caller's thread as each file settles."""


class Uploader:
    """Uploads to one bucket, under one prefix, and nowhere else.

    ``bucket`` and ``prefix`` default to ``TASKCREDS_BUCKET`` and ``TASKCREDS_PREFIX``. A non-empty
    prefix always ends with ``/``. Credentials come from ``provider`` (default: the process-wide
    one) through a boto3 session, so a long upload keeps signing with fresh credentials.
    ``region_name`` defaults to ``AWS_REGION``, then ``AWS_DEFAULT_REGION`` (read from
    ``environ``), then boto3's configuration; a malformed value raises :class:`ConfigError`.
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
        #: The region every client is made for; None: boto3's configuration decides.
        self.region_name, self.region_source = region_from_environment(region_name, environ)
        self._provider = provider
        self._session = session
        self._endpoint_url = endpoint_url
        self._environ = environ
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._max_concurrency = max_concurrency
        self._max_attempts = max_attempts
        self._retry_mode = retry_mode
        self._ledger = Ledger()
        #: How the uploader waits before retrying a 409 ConditionalRequestConflict (tests
        #: replace it).
        self._sleep: Callable[[float], None] = time.sleep
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
        options.setdefault("content_type", _guess_type(source.name))
        return replace(self._transfer(str(source), full_key, size, options), path=str(source))

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
        on_file: OnFile | None = None,
        keep_going: bool = True,
        **options: Any,
    ) -> DirectoryResult:
        """Upload every file under ``path`` (relative paths become keys under the prefix).

        ``include``/``exclude`` are glob patterns on the relative path (``*.log``, ``tmp/*``).
        With ``skip_unchanged`` a file whose bytes the object already holds is skipped (checked
        by a SHA-256 stored in the object's metadata). ``on_file`` is called, in the caller's
        thread, with a :class:`FileEvent` as each file is skipped, planned, uploaded or fails.
        One file's failure does not stop the rest; with ``keep_going=False`` the first file is
        uploaded alone, and if it is refused (:class:`AccessDeniedError`) or finds no
        credentials, the others are not attempted (``not_attempted``): they would fail the
        same way.
        """
        root = Path(path)
        if not root.exists():
            raise UploadError(f"{root} does not exist", bucket=self.bucket)
        if not root.is_dir():
            raise UploadError(f"{root} is not a directory", bucket=self.bucket)
        result = DirectoryResult(dry_run=dry_run)
        emit = _Emitter(on_file)
        with _Tree(root) as tree:
            planned = list(self._plan_directory(tree, tuple(include), tuple(exclude), result))
            for failed in result.failed:
                emit("failed", failed.path, failed.key, failed)
            digests = self._unchanged_check(tree, planned, result, emit) if skip_unchanged else {}
            settled = {*result.skipped, *(failed.key for failed in result.failed)}
            todo = [item for item in planned if item.key not in settled]
            if dry_run:
                for item in todo:
                    result.planned.append(item.key)
                    emit("planned", str(item.path), item.key)
                return result
            self._upload_many(
                tree, todo, digests, options, result, emit=emit, keep_going=keep_going
            )
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
        except Exception as exc:
            own = None
            try:
                if not overwrite:
                    own = self._own_write_after_lost_answer(exc, key, size, extra_args)
            finally:
                if own is None:
                    self._clean_up_after_failure(key)
            if own is not None:
                self._ledger.forget(key)
                if size is not None and size < self._multipart_threshold:
                    counter.add(size)  # sent in one request: the progress callback gets it now
                return own
            if isinstance(exc, TaskCredsError):
                raise
            raise self._translated(exc, key) from exc
        except BaseException:
            self._clean_up_after_failure(key)
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

    def _own_write_after_lost_answer(
        self, error: Exception, key: str, size: int | None, extra_args: dict[str, Any]
    ) -> UploadResult | None:
        """The result of a no-overwrite write that S3 refused on a retry because an earlier
        attempt, whose answer was lost, had stored it; None when the object is someone else's.

        Only a 412 (or NoSuchUpload for a completion) that follows an attempt with no answer is
        checked: S3 holds this write's bytes when its checksum (and size, and the SHA-256
        ``upload_dir`` stores) is what this write sent.
        """
        unconfirmed = self._ledger.take_unconfirmed(key)
        code = error_code_and_message(error)[0]
        if unconfirmed is None or code not in ("PreconditionFailed", "412", "NoSuchUpload"):
            return None
        algorithm = str(extra_args["ChecksumAlgorithm"])
        try:
            head: dict[str, Any] = self._client(overwrite=True).head_object(
                Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
            )
        except _AWS_ERRORS as exc:
            if error_code_and_message(exc)[0] in ("404", "NoSuchKey", "NotFound"):
                return None
            reason = self._translated(exc, key)
            raise UploadError(
                f"s3://{self.bucket}/{key} exists and may be this upload's own: the answer to an "
                f"earlier attempt was lost, and checking the object failed ({reason})",
                bucket=self.bucket,
                key=key,
                hint="look at the object (its checksum or x-amz-meta-taskcreds-sha256) before "
                "uploading again; reading it back needs s3:GetObject",
            ) from error
        if not _holds_this_write(head, unconfirmed, algorithm, size, extra_args):
            return None
        multipart = unconfirmed.operation == "CompleteMultipartUpload"
        checksum = head.get(f"Checksum{algorithm}")
        logger.info(
            "the answer to %s of s3://%s/%s was lost and the retry was refused (%s); the object "
            "holds this upload's own bytes (%s %s), so it was uploaded",
            unconfirmed.operation,
            self.bucket,
            key,
            code,
            algorithm,
            checksum,
        )
        return UploadResult(
            bucket=self.bucket,
            key=key,
            size=int(head.get("ContentLength", size or 0)),
            etag=head.get("ETag"),
            version_id=head.get("VersionId"),
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
        return translate(error, bucket=self.bucket, key=key, prefix=self.prefix)

    # -- directories ----------------------------------------------------------------------------

    def _plan_directory(
        self,
        tree: _Tree,
        include: tuple[str, ...],
        exclude: tuple[str, ...],
        result: DirectoryResult,
    ) -> Iterator[_Listed]:
        for parts, listed in tree.entries():
            path = Path(tree.root, *parts)
            try:
                relative = keys.relative_key_for_path(tree.root, path)
            except TaskCredsError as exc:
                result.failed.append(FailedFile(str(path), None, str(exc), type(exc).__name__))
                continue
            if include and not any(fnmatch.fnmatchcase(relative, p) for p in include):
                continue
            if any(fnmatch.fnmatchcase(relative, p) for p in exclude):
                continue
            try:
                key = self.key_for(relative)
            except TaskCredsError as exc:
                result.failed.append(FailedFile(str(path), None, str(exc), type(exc).__name__))
                continue
            if listed is not None:
                yield _Listed(path, key, parts, (listed.st_dev, listed.st_ino))
                continue
            # A symlink: it is uploaded (under its own name) if it leads to a regular file in
            # the tree. Its target's place in the tree is opened from now on, never the link.
            target = tree.target_of(parts)
            if target is None:
                continue  # dangling, or a directory: not a file to upload
            yield _Listed(path, key, *target)

    def _open_listed(self, tree: _Tree, item: _Listed) -> int:
        """A descriptor of the very file that was listed, opened relative to directory
        descriptors without following any symlink; a file or directory swapped since the
        listing (a symlink to elsewhere, another file) fails this file, with UploadError."""
        try:
            fd = tree.open(item.parts)
        except _SymlinkOnTheWay as swapped:
            raise UploadError(
                f"{item.path} changed since it was listed: {swapped.where} is now a symbolic "
                "link (or no longer a directory); it was not uploaded",
                bucket=self.bucket,
                key=item.key,
                hint="do not change the directory while it is being uploaded",
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != item.identity:
                raise UploadError(
                    f"{item.path} changed since it was listed: it is no longer the same file "
                    "(replaced or swapped); it was not uploaded",
                    bucket=self.bucket,
                    key=item.key,
                    hint="do not change the directory while it is being uploaded",
                )
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _unchanged_check(
        self, tree: _Tree, planned: list[_Listed], result: DirectoryResult, emit: _Emitter
    ) -> dict[str, str]:
        """SHA-256 of each file; keys whose object already holds those bytes go to skipped."""

        def check(item: _Listed) -> tuple[str, str | FailedFile, bool]:
            try:
                with os.fdopen(self._open_listed(tree, item), "rb") as handle:
                    digest = _sha256(handle)
            except (OSError, UploadError) as exc:  # vanished, unreadable or swapped: it alone
                return item.key, _failed(item, exc), False
            return item.key, digest, self._remote_digest(item.key) == digest

        digests = {}
        with ThreadPoolExecutor(self._max_concurrency) as pool:
            checked = pool.map(check, planned)
            for item, (key, digest, unchanged) in zip(planned, checked, strict=True):
                if isinstance(digest, FailedFile):
                    result.failed.append(digest)
                    emit("failed", digest.path, key, digest)
                    continue
                digests[key] = digest
                if unchanged:
                    result.skipped.append(key)
                    emit("skipped", str(item.path), key)
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
        tree: _Tree,
        todo: list[_Listed],
        digests: Mapping[str, str],
        options: dict[str, Any],
        result: DirectoryResult,
        *,
        emit: _Emitter,
        keep_going: bool,
    ) -> None:
        def one(item: _Listed) -> tuple[UploadResult | FailedFile, bool]:
            """The file's outcome, and whether its failure means the rest would fail too."""
            per_file = dict(options)
            per_file.setdefault("content_type", _guess_type(item.path.name))
            try:
                # The bytes come from the descriptor checked against the listing, never from
                # the name (which may be a symlink by now).
                with os.fdopen(self._open_listed(tree, item), "rb") as handle:
                    metadata = dict(per_file.get("metadata") or {})
                    digest = digests.get(item.key)
                    if digest is None:
                        digest = _sha256(handle)
                        handle.seek(0)
                    metadata[SHA256_METADATA] = digest
                    per_file["metadata"] = metadata
                    size = os.fstat(handle.fileno()).st_size
                    uploaded = self._transfer(handle, item.key, size, per_file)
                    return replace(uploaded, path=str(item.path)), False
            except TaskCredsError as exc:
                return _failed(item, exc), _fails_every_file(exc)
            except OSError as exc:
                return _failed(item, exc), False

        outcomes: list[UploadResult | FailedFile | None] = [None] * len(todo)

        def settle(index: int, outcome: UploadResult | FailedFile) -> None:
            outcomes[index] = outcome
            item = todo[index]
            if isinstance(outcome, UploadResult):
                emit("uploaded", str(item.path), item.key, outcome)
            else:
                emit("failed", outcome.path, outcome.key, outcome)

        start = 0
        if not keep_going and todo:
            # The first file alone: if the role may not write here at all, that is one refusal
            # and not one per file.
            first, every_file = one(todo[0])
            settle(0, first)
            start = 1
            if every_file:
                result.not_attempted.extend(item.key for item in todo[1:])
                todo = todo[:1]
        # Files are uploaded a few at a time; each one's parts share the transfer manager's pool.
        # Outcomes are reported as they come, and kept in the order of the paths.
        pool = ThreadPoolExecutor(self._max_concurrency)
        try:
            futures: dict[Future[tuple[UploadResult | FailedFile, bool]], int] = {
                pool.submit(one, todo[index]): index for index in range(start, len(todo))
            }
            for future in as_completed(futures):
                settle(futures[future], future.result()[0])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: start no further file
            raise
        pool.shutdown(wait=True)
        for outcome in outcomes:
            if isinstance(outcome, UploadResult):
                result.uploaded.append(outcome)
            elif outcome is not None:
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
            "s3", endpoint_url=self._endpoint_url, region_name=self.region_name, config=config
        )
        self._ledger.register(client.meta.events)
        if self._provider is not None or self._session is None:
            RefreshOnExpired(self._provider_or_default()).register(client.meta.events)
        if not overwrite:

            def sleep(seconds: float) -> None:
                self._sleep(seconds)  # looked up at each call: tests replace it

            NoOverwrite(sleep=sleep).register(client.meta.events)
        return client

    def _boto_session(self) -> Any:
        if self._session is not None:
            return self._session
        from taskcreds.boto import session

        return session(
            provider=self._provider_or_default(),
            region_name=self.region_name,
            environ=self._environ,
        )

    def _provider_or_default(self) -> CredentialProvider:
        if self._provider is None:
            from taskcreds.provider import default_provider

            self._provider = default_provider()
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


def _sha256(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(MiB), b""):
        digest.update(block)
    return digest.hexdigest()


def _failed(item: _Listed, error: Exception) -> FailedFile:
    return FailedFile(str(item.path), item.key, str(error), type(error).__name__)


def _fails_every_file(error: TaskCredsError) -> bool:
    """Whether every other file of the directory would fail the same way: the role may not
    write here, or there are no credentials (any error that is not about this one object)."""
    return isinstance(error, AccessDeniedError) or not isinstance(error, UploadError)


class _Emitter:
    """Calls ``upload_dir``'s ``on_file`` callback, if there is one."""

    def __init__(self, on_file: OnFile | None) -> None:
        self._on_file = on_file

    def __call__(
        self,
        status: FileStatus,
        path: str,
        key: str | None,
        outcome: UploadResult | FailedFile | None = None,
    ) -> None:
        if self._on_file is not None:
            self._on_file(FileEvent(status, path, key, outcome))


def _holds_this_write(
    head: Mapping[str, Any],
    sent: Unconfirmed,
    algorithm: str,
    size: int | None,
    extra_args: Mapping[str, Any],
) -> bool:
    """Whether the object S3 describes (HEAD) is the one this write sent."""
    if size is not None and head.get("ContentLength") != size:
        return False
    wanted_sha = (extra_args.get("Metadata") or {}).get(SHA256_METADATA)
    if wanted_sha is not None and head.get("Metadata", {}).get(SHA256_METADATA) != wanted_sha:
        return False
    if sent.checksum is not None:
        sent_algorithm, value = sent.checksum
        stored = head.get(f"Checksum{sent_algorithm}")
        if stored is not None:
            return bool(stored == value)
    elif sent.parts:
        parts = sorted(sent.parts, key=lambda part: int(part.get("PartNumber", 0)))
        stored = head.get(f"Checksum{algorithm}")
        sums = [part.get(f"Checksum{algorithm}") for part in parts]
        if stored is not None and str(stored).endswith(f"-{len(parts)}") and all(sums):
            return bool(stored == composite_checksum([str(s) for s in sums], algorithm))
        etags = [part.get("ETag") for part in parts]
        if str(head.get("ETag", "")).strip('"').endswith(f"-{len(parts)}") and all(etags):
            return bool(head["ETag"] == multipart_etag([str(e) for e in etags]))
    # No checksum to compare: only the SHA-256 upload_dir stores can say it is this write.
    return wanted_sha is not None


# -- directories, opened by descriptor -------------------------------------------------------------

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
#: What opening a symlink with O_NOFOLLOW gives (ELOOP; EMLINK on FreeBSD), or a path component
#: that is no longer a directory (ENOTDIR).
_SWAPPED_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})


@dataclass(frozen=True)
class _Listed:
    """A file ``upload_dir`` listed: where it is shown, its key, and what was found."""

    #: The path as listed (under the root, as the caller named it).
    path: Path
    key: str
    #: Where its bytes are, relative to the root (for a symlink: its target's place).
    parts: tuple[str, ...]
    #: (st_dev, st_ino) of the file listed.
    identity: tuple[int, int]


class _SymlinkOnTheWay(Exception):
    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


class _Tree:
    """A directory opened once; its files are listed and opened relative to descriptors.

    Every sub-directory is opened with ``O_DIRECTORY | O_NOFOLLOW`` relative to its parent's
    descriptor and every file with ``O_NOFOLLOW``, so nothing swapped into the tree after it was
    listed (a symlink to ``/etc``, to a secret) is ever followed. The root itself may be reached
    through a symlink: the caller named it.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        try:
            self._real = Path(os.path.realpath(f"/proc/self/fd/{self.fd}"))
            if not self._real.is_absolute() or not self._real.is_dir():
                self._real = root.resolve()
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self) -> _Tree:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)

    def entries(self) -> Iterator[tuple[tuple[str, ...], os.stat_result | None]]:
        """(parts, lstat) of each regular file, (parts, None) of each symlink, sorted by path;
        symlinked directories are not entered."""
        found: list[tuple[tuple[str, ...], os.stat_result | None]] = []
        self._scan(self.fd, (), found)
        found.sort(key=lambda entry: entry[0])
        return iter(found)

    def _scan(
        self,
        dir_fd: int,
        parts: tuple[str, ...],
        found: list[tuple[tuple[str, ...], os.stat_result | None]],
    ) -> None:
        try:
            with os.scandir(dir_fd) as listing:
                entries = list(listing)
        except OSError:
            return  # unreadable: skipped, as os.walk does
        for entry in entries:
            here = (*parts, entry.name)
            try:
                if entry.is_symlink():
                    found.append((here, None))
                elif entry.is_dir(follow_symlinks=False):
                    try:
                        sub = os.open(entry.name, _DIRECTORY_FLAGS, dir_fd=dir_fd)
                    except OSError:
                        continue  # gone, or swapped for a symlink since it was read: not entered
                    try:
                        self._scan(sub, here, found)
                    finally:
                        os.close(sub)
                elif entry.is_file(follow_symlinks=False):
                    found.append((here, entry.stat(follow_symlinks=False)))
            except OSError:
                continue  # vanished while listed

    def target_of(self, parts: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[int, int]] | None:
        """Where the symlink at ``parts`` leads inside the tree, and that file's identity; None
        if it leads to nothing, to something not a regular file, or out of the tree."""
        real = Path(os.path.realpath(Path(self._real, *parts)))
        try:
            target = real.relative_to(self._real).parts
        except ValueError:
            return None
        if not target:
            return None
        try:
            fd = self.open(target)
        except (OSError, _SymlinkOnTheWay):
            return None
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        return target, (info.st_dev, info.st_ino)

    def open(self, parts: tuple[str, ...]) -> int:
        """A read-only descriptor of ``parts`` under the root, following no symlink on the way;
        raises :class:`_SymlinkOnTheWay` (naming the component) when one is met."""
        opened: list[int] = []
        dir_fd = self.fd
        try:
            for depth, name in enumerate(parts):
                last = depth == len(parts) - 1
                try:
                    fd = os.open(name, _FILE_FLAGS if last else _DIRECTORY_FLAGS, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno in _SWAPPED_ERRNOS:
                        raise _SymlinkOnTheWay(str(Path(self.root, *parts[: depth + 1]))) from None
                    raise
                if last:
                    os.set_blocking(fd, True)
                    return fd
                opened.append(fd)
                dir_fd = fd
            raise FileNotFoundError(errno.ENOENT, "no file named", str(self.root))
        finally:
            for fd in opened:
                os.close(fd)
