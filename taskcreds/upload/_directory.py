"""Directory upload: which files (the one selection, also behind ``plan_dir`` and the CLI's
``--dry-run``), skip-unchanged, and the safe walk that opens every file relative to directory
descriptors (:mod:`._tree`), never following a symlink swapped in after the listing."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import queue
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from taskcreds.errors import AccessDeniedError, TaskCredsError, UploadError
from taskcreds.upload import _crt_batch, keys
from taskcreds.upload._multipart import AWS_ERRORS
from taskcreds.upload._tree import SymlinkOnTheWay, Tree
from taskcreds.upload.options import SHA256_METADATA, MiB, UploadOptions
from taskcreds.upload.results import (
    DirectoryResult,
    FailedFile,
    FileEvent,
    FileStatus,
    PlannedFile,
    UploadResult,
)

if TYPE_CHECKING:
    from taskcreds.upload.uploader import Uploader

__all__ = ["Listed", "OnFile", "plan", "plan_directory", "selected", "upload_dir"]

OnFile = Callable[[FileEvent], None]
"""Called by ``upload_dir`` in the caller's thread as each file settles."""


def selected(relative: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a file at ``relative`` (a POSIX path under the directory) is to be uploaded:
    it matches an ``include`` glob (or there is none) and no ``exclude`` glob."""
    if include and not any(fnmatch.fnmatchcase(relative, pattern) for pattern in include):
        return False
    return not any(fnmatch.fnmatchcase(relative, pattern) for pattern in exclude)


def checked_root(root: Path, bucket: str) -> None:
    if not root.exists():
        raise UploadError(f"{root} does not exist", bucket=bucket)
    if not root.is_dir():
        raise UploadError(f"{root} is not a directory", bucket=bucket)


# -- planning -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listed:
    """A file ``upload_dir`` listed: where it is shown, its key, and what was found."""

    #: The path as listed (under the root, as the caller named it), as ``str(Path(...))``.
    path: str
    key: str
    #: Where its bytes are, relative to the root (for a symlink: its target's place).
    parts: tuple[str, ...]
    #: (st_dev, st_ino) of the file listed.
    identity: tuple[int, int]
    size: int

    @property
    def name(self) -> str:
        """The file's name as listed (a symlink's own name, not its target's)."""
        return os.path.basename(self.path)

    def failed(self, error: TaskCredsError | OSError) -> FailedFile:
        """This file, not uploaded because of ``error``."""
        return FailedFile(self.path, self.key, str(error), error)


def listed_path(root: str, parts: tuple[str, ...]) -> str:
    """``str(Path(root, *parts))`` for names from a listing (none holds a '/' or is '.' or
    '..'), without making a Path per file: ``root`` is ``str()`` of a Path already."""
    if root == ".":
        return os.path.join(*parts)
    return os.path.join(root, *parts)


def plan_directory(
    tree: Tree,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    result: DirectoryResult,
    key_for: Callable[[str], str],
) -> Iterator[Listed]:
    """The files of ``tree`` to upload, in path order; a name no key can be made for goes to
    ``result.failed``."""
    root = str(tree.root)
    for parts, listed in tree.entries():
        path = listed_path(root, parts)
        try:
            # A file the walk found (it follows no symlink) lies under the root by construction:
            # only a symlink's place needs resolving (a third of the CPU per small file).
            relative = (
                keys.relative_key_for_parts(parts)
                if listed is not None
                else keys.relative_key_for_path(tree.root, Path(path))
            )
        except TaskCredsError as exc:
            result.failed.append(FailedFile(path, None, str(exc), exc))
            continue
        if not selected(relative, include, exclude):
            continue
        try:
            key = key_for(relative)
        except TaskCredsError as exc:
            result.failed.append(FailedFile(path, None, str(exc), exc))
            continue
        if listed is not None:
            yield Listed(path, key, parts, (listed.st_dev, listed.st_ino), listed.st_size)
            continue
        # A symlink: it is uploaded (under its own name) if it leads to a regular file in
        # the tree. Its target's place in the tree is opened from now on, never the link.
        target = tree.target_of(parts)
        if target is None:
            continue  # dangling, or a directory: not a file to upload
        yield Listed(path, key, *target)


def plan(
    uploader: Uploader, root: Path, include: Sequence[str], exclude: Sequence[str]
) -> list[PlannedFile]:
    """What ``upload_dir`` would upload (before skip-unchanged): path, key and size."""
    checked_root(root, uploader.bucket)
    with Tree(root) as tree:
        listed = plan_directory(
            tree, tuple(include), tuple(exclude), DirectoryResult(), uploader.key_for
        )
        return [PlannedFile(item.path, item.key, item.size) for item in listed]


# -- uploading ----------------------------------------------------------------------------------


def upload_dir(
    uploader: Uploader,
    root: Path,
    *,
    include: Sequence[str],
    exclude: Sequence[str],
    skip_unchanged: bool,
    dry_run: bool,
    on_file: OnFile | None,
    keep_going: bool,
    options: UploadOptions,
) -> DirectoryResult:
    """:meth:`Uploader.upload_dir` (see there)."""
    checked_root(root, uploader.bucket)
    result = DirectoryResult(dry_run=dry_run)
    run = _Run(uploader, _Emitter(on_file), result)
    with Tree(root) as tree:
        planned = list(
            plan_directory(tree, tuple(include), tuple(exclude), result, uploader.key_for)
        )
        for failed in result.failed:
            run.emit("failed", failed.path, failed.key, failed)
        digests = run.unchanged_check(tree, planned) if skip_unchanged else {}
        settled = {*result.skipped, *(failed.key for failed in result.failed)}
        todo = [item for item in planned if item.key not in settled]
        if dry_run:
            for item in todo:
                result.planned.append(item.key)
                run.emit("planned", item.path, item.key)
            return result
        run.upload_many(tree, todo, digests, options, keep_going=keep_going)
    return result


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


@dataclass
class _Run:
    """One ``upload_dir``: its uploader, its callback and the result it fills in."""

    uploader: Uploader
    emit: _Emitter
    result: DirectoryResult

    def open_listed(self, tree: Tree, item: Listed) -> int:
        """A descriptor of the very file that was listed, opened relative to directory
        descriptors without following any symlink; a file or directory swapped since the
        listing (a symlink to elsewhere, another file) fails this file, with UploadError."""
        bucket = self.uploader.bucket
        try:
            fd = tree.open(item.parts)
        except SymlinkOnTheWay as swapped:
            raise UploadError(
                f"{item.path} changed since it was listed: {swapped.where} is now a symbolic "
                "link (or no longer a directory); it was not uploaded",
                bucket=bucket,
                key=item.key,
                hint="do not change the directory while it is being uploaded",
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != item.identity:
                raise UploadError(
                    f"{item.path} changed since it was listed: it is no longer the same file "
                    "(replaced or swapped); it was not uploaded",
                    bucket=bucket,
                    key=item.key,
                    hint="do not change the directory while it is being uploaded",
                )
        except BaseException:
            os.close(fd)
            raise
        return fd

    def unchanged_check(self, tree: Tree, planned: list[Listed]) -> dict[str, str]:
        """SHA-256 of each file; keys whose object already holds those bytes go to skipped."""
        result, emit = self.result, self.emit

        def check(item: Listed) -> tuple[str, str | FailedFile, bool]:
            try:
                with os.fdopen(self.open_listed(tree, item), "rb") as handle:
                    digest = _sha256(handle)
            except (OSError, UploadError) as exc:  # vanished, unreadable or swapped: it alone
                return item.key, item.failed(exc), False
            return item.key, digest, self.remote_digest(item.key) == digest

        digests = {}
        with ThreadPoolExecutor(self.uploader._max_concurrency) as pool:
            checked = pool.map(check, planned)
            for item, (key, digest, unchanged) in zip(planned, checked, strict=True):
                if isinstance(digest, FailedFile):
                    result.failed.append(digest)
                    emit("failed", digest.path, key, digest)
                    continue
                digests[key] = digest
                if unchanged:
                    result.skipped.append(key)
                    emit("skipped", item.path, key)
        return digests

    def remote_digest(self, key: str) -> str | None:
        """The SHA-256 ``upload_dir`` stored with the object, if it has one."""
        try:
            head = self.uploader._client(overwrite=True).head_object(
                Bucket=self.uploader.bucket, Key=key
            )
        except AWS_ERRORS:  # missing, or no s3:GetObject: upload it either way
            return None
        return head.get("Metadata", {}).get(SHA256_METADATA)

    def upload_one(
        self, tree: Tree, item: Listed, digests: Mapping[str, str], options: UploadOptions
    ) -> tuple[UploadResult | FailedFile, bool]:
        """The file's outcome, and whether its failure means the rest would fail too."""
        per_file = options.with_defaults(name=item.name)
        try:
            # The bytes come from the descriptor checked against the listing, never from
            # the name (which may be a symlink by now).
            with os.fdopen(self.open_listed(tree, item), "rb") as handle:
                digest = digests.get(item.key)
                if digest is None:
                    digest = _sha256(handle)
                    handle.seek(0)
                metadata = {**(per_file.metadata or {}), SHA256_METADATA: digest}
                size = os.fstat(handle.fileno()).st_size
                uploaded = self.uploader._transfer(
                    handle, item.key, size, replace(per_file, metadata=metadata)
                )
                return replace(uploaded, path=item.path), False
        except TaskCredsError as exc:
            return item.failed(exc), _fails_every_file(exc)
        except OSError as exc:
            return item.failed(exc), False

    def upload_many(
        self,
        tree: Tree,
        todo: list[Listed],
        digests: Mapping[str, str],
        options: UploadOptions,
        *,
        keep_going: bool,
    ) -> None:
        uploads = _Uploads(self, tree, todo, digests, options)
        start = 0
        if not keep_going and todo:
            # The first file alone: if the role may not write here at all, that is one refusal
            # and not one per file.
            first, every_file = self.upload_one(tree, todo[0], digests, options)
            uploads.settle(0, first)
            start = 1
            if every_file:
                self.result.not_attempted.extend(item.key for item in todo[1:])
                start = len(todo)
        uploads.run(start)
        for outcome in uploads.outcomes:
            if isinstance(outcome, UploadResult):
                self.result.uploaded.append(outcome)
            elif outcome is not None:
                self.result.failed.append(outcome)

    def small_files(
        self,
        tree: Tree,
        digests: Mapping[str, str],
        options: UploadOptions,
        settle: _crt_batch.Settle,
        ended: queue.SimpleQueue[Any],
    ) -> _crt_batch.SmallFiles | None:
        """The CRT lane for small files, where the uploader uses the CRT for them (overwriting
        writes with a taskcreds provider, options its headers can carry), else None."""
        if not options.overwrite:
            return None
        headers = _crt_batch.lane_headers(options, self.uploader.checksum_algorithm)
        if headers is None:
            return None
        engine = self.uploader._clients.crt()
        if engine is None:
            return None
        return _crt_batch.SmallFiles(
            self.uploader,
            engine,
            tree=tree,
            open_listed=self.open_listed,
            digests=digests,
            options=options,
            headers=headers,
            settle=settle,
            ended=ended,
        )


class _Uploads:
    """The files of one ``upload_dir`` after the first: small ones through the CRT from this
    thread (:mod:`._crt_batch`), the others a few at a time by a pool (each one's parts share
    the transfer's concurrency). Both report to one queue, so outcomes are settled in the
    caller's thread as they come, and kept in the order of the paths."""

    def __init__(
        self,
        run: _Run,
        tree: Tree,
        todo: list[Listed],
        digests: Mapping[str, str],
        options: UploadOptions,
    ) -> None:
        self._run = run
        self._tree = tree
        self._todo = todo
        self._digests = digests
        self._options = options
        self.outcomes: list[UploadResult | FailedFile | None] = [None] * len(todo)
        #: (index, future) from the pool; (lane, index) from the CRT lane.
        self._ended: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pool_busy = 0
        self._pool: ThreadPoolExecutor | None = None
        self._lane = run.small_files(tree, digests, options, self._settle_lane, self._ended)

    def settle(self, index: int, outcome: UploadResult | FailedFile) -> None:
        self.outcomes[index] = outcome
        item = self._todo[index]
        if isinstance(outcome, UploadResult):
            self._run.emit("uploaded", item.path, item.key, outcome)
        else:
            self._run.emit("failed", outcome.path, outcome.key, outcome)

    def run(self, start: int) -> None:
        lane = self._lane
        try:
            for index in range(start, len(self._todo)):
                item = self._todo[index]
                if lane is not None and lane.fits(item):
                    if lane.busy:
                        while not lane.has_room:
                            self._handle_next()
                    if lane.send(index, item):
                        continue
                self._to_pool(index)
            while self._pool_busy or (lane is not None and lane.in_flight):
                self._handle_next()
        except BaseException:
            if lane is not None:
                lane.cancel_all()
            if self._pool is not None:  # Ctrl-C: start no further file
                self._pool.shutdown(wait=True, cancel_futures=True)
            raise
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _to_pool(self, index: int) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._run.uploader._max_concurrency)
        self._pool_busy += 1
        future = self._pool.submit(
            self._run.upload_one, self._tree, self._todo[index], self._digests, self._options
        )
        future.add_done_callback(lambda done: self._ended.put((index, done)))

    def _settle_lane(self, index: int, outcome: UploadResult | FailedFile | None) -> None:
        if outcome is None:  # not the lane's to send after all
            self._to_pool(index)
        else:
            self.settle(index, outcome)

    def _handle_next(self) -> None:
        lane = self._lane
        waiting = lane is not None and lane.in_flight
        try:
            entry = self._ended.get(timeout=_crt_batch.DEADLINE_SCAN if waiting else None)
        except queue.Empty:
            entry = None
        if lane is not None:
            lane.cancel_overdue()
        if entry is None:
            return
        if isinstance(entry[0], int):
            self._pool_busy -= 1
            self.settle(entry[0], entry[1].result()[0])
        else:
            entry[0].settle_ended(entry[1])


def _sha256(handle: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(MiB), b""):
        digest.update(block)
    return digest.hexdigest()


def _fails_every_file(error: TaskCredsError) -> bool:
    """Whether every other file of the directory would fail the same way: the role may not
    write here, or there are no credentials (any error that is not about this one object)."""
    return isinstance(error, AccessDeniedError) or not isinstance(error, UploadError)
