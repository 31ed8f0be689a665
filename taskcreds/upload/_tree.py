"""A directory opened once, listed and read relative to directory descriptors: nothing swapped
into it after the listing (a symlink to ``/etc``, to a secret) is ever followed."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SymlinkOnTheWay", "Tree"]

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
#: What opening a symlink with O_NOFOLLOW gives (ELOOP; EMLINK on FreeBSD), or a path component
#: that is no longer a directory (ENOTDIR).
_SWAPPED_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})


class SymlinkOnTheWay(Exception):
    """A path component met on the way to a file is (now) a symbolic link."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


class Tree:
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

    def __enter__(self) -> Tree:
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

    def target_of(
        self, parts: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[int, int], int] | None:
        """Where the symlink at ``parts`` leads inside the tree, that file's identity and size;
        None if it leads to nothing, to something not a regular file, or out of the tree."""
        real = Path(os.path.realpath(Path(self._real, *parts)))
        try:
            target = real.relative_to(self._real).parts
        except ValueError:
            return None
        if not target:
            return None
        try:
            fd = self.open(target)
        except (OSError, SymlinkOnTheWay):
            return None
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        return target, (info.st_dev, info.st_ino), info.st_size

    def open(self, parts: tuple[str, ...]) -> int:
        """A read-only descriptor of ``parts`` under the root, following no symlink on the way;
        raises :class:`SymlinkOnTheWay` (naming the component) when one is met."""
        opened: list[int] = []
        dir_fd = self.fd
        try:
            for depth, name in enumerate(parts):
                last = depth == len(parts) - 1
                try:
                    fd = os.open(name, _FILE_FLAGS if last else _DIRECTORY_FLAGS, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno in _SWAPPED_ERRNOS:
                        raise SymlinkOnTheWay(str(Path(self.root, *parts[: depth + 1]))) from None
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
