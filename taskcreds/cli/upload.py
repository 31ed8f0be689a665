"""``taskcreds upload``: files and directories to the app's own bucket and prefix.

A file goes through :meth:`Uploader.upload_file`, a directory through :meth:`Uploader.upload_dir`
(with ``--include``/``--exclude`` and skip-unchanged). One line per object on stdout as each one
is done (also in a log, when stdout is not a terminal), a summary at the end, a tqdm progress bar
on stderr when stderr is a terminal; ``--quiet`` leaves out the lines per object and the bar.
Each failure is printed once, on stderr. One failed file does not stop the others, except that a
directory whose first file is refused (access denied, no credentials) stops there unless
``--keep-going``: the rest would be refused the same way. ``--dry-run`` prints each file and
the key it would become (:meth:`Uploader.plan_dir`, the uploader's own selection) and writes
nothing. The exit code is that of the most
fundamental failure (credentials and configuration before access denied, access denied before
any other upload failure).

boto3, s3transfer and tqdm are imported inside :func:`run` only, so other commands stay fast
(:mod:`taskcreds.upload.options` loads no boto).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskcreds import environment
from taskcreds.cli._common import (
    EXIT_ACCESS_DENIED,
    EXIT_UPLOAD,
    EXIT_USAGE,
    Output,
    exit_code_for,
)
from taskcreds.cli._upload_report import (
    Failure,
    Lines,
    Report,
    document,
    exists_reason,
    nothing_to_upload,
    summary,
    uploaded_line,
)
from taskcreds.errors import ConfigError, ObjectExistsError, TaskCredsError, UploadError
from taskcreds.upload.options import CHECKSUM_ALGORITHMS, MIN_PART_SIZE, MiB

if TYPE_CHECKING:
    from taskcreds.upload import (
        DirectoryResult,
        FailedFile,
        FileEvent,
        PlannedFile,
        Uploader,
    )

EXAMPLE = "python -m taskcreds upload report.csv site/ --prefix nightly/ --exclude '*.tmp'"

#: S3's smallest part (the last part of an upload excepted), in MiB.
MIN_PART_SIZE_MIB = MIN_PART_SIZE // MiB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="files and directories to upload; a file becomes PREFIX + its name, a file in a "
        "directory PREFIX + its path relative to that directory",
    )
    parser.add_argument("--bucket", help="the bucket (default: $TASKCREDS_BUCKET)")
    parser.add_argument(
        "--prefix", help="the key prefix; a '/' is added if missing (default: $TASKCREDS_PREFIX)"
    )
    parser.add_argument(
        "--key", help="the key under the prefix for a single file (default: the file's name)"
    )
    parser.add_argument(
        "--no-overwrite",
        action="store_true",
        help="never replace an existing object (If-None-Match: *); a taken key fails with exit 8",
    )
    parser.add_argument(
        "--checksum",
        type=str.upper,
        choices=CHECKSUM_ALGORITHMS,
        default="CRC32C",
        metavar="ALG",
        help=f"checksum S3 computes and checks: {', '.join(CHECKSUM_ALGORITHMS)} (default CRC32C)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print each file that would be uploaded and the key it would become; write nothing",
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="in directories, upload only relative paths matching GLOB (repeatable)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="in directories, leave out relative paths matching GLOB (repeatable)",
    )
    parser.add_argument(
        "--no-skip-unchanged",
        dest="skip_unchanged",
        action="store_false",
        help="in directories, upload files even when the object already holds the same bytes",
    )
    parser.add_argument(
        "--part-size",
        type=_part_size,
        metavar="MiB",
        help="multipart part size in MiB, at least 5; files of this size or more are sent in "
        "parts (default 8)",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive,
        metavar="N",
        help="requests in flight at once (default 10)",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="in directories, try every file even when the first one is refused (by default "
        "the rest are not attempted: they would be refused the same way)",
    )
    parser.add_argument(
        "--quiet",
        dest="no_lines",
        action="store_true",
        help="no line per object and no progress bar: only failures and the summary",
    )


def _part_size(text: str) -> int:
    value = _positive(text)
    if value < MIN_PART_SIZE_MIB:
        raise argparse.ArgumentTypeError(f"{value} MiB is below S3's minimum part size of 5 MiB")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


# -- the command --------------------------------------------------------------------------------


def run(args: argparse.Namespace, output: Output) -> int:
    paths = [Path(name) for name in args.paths]
    problem = _usage_problem(args, paths)
    if problem is not None:
        return _usage_error(output, problem)
    directory_options = args.include or args.exclude or not args.skip_unchanged
    if directory_options and not any(path.is_dir() for path in paths):
        output.warn("--include, --exclude and --no-skip-unchanged apply to directories only")

    if not (args.bucket or os.environ.get(environment.BUCKET)):
        raise ConfigError(
            "no bucket: pass --bucket or set TASKCREDS_BUCKET",
            hint="in the task definition: environment TASKCREDS_BUCKET=<the app's bucket>",
        )

    from tqdm import tqdm

    from taskcreds.upload import Uploader

    lines = Lines(output, tqdm.external_write_mode, per_object=not args.no_lines)

    tuning: dict[str, Any] = {"checksum_algorithm": args.checksum}
    if args.part_size is not None:
        tuning["part_size"] = tuning["multipart_threshold"] = args.part_size * MiB
    if args.concurrency is not None:
        tuning["max_concurrency"] = args.concurrency
    report = Report()
    started = time.monotonic()
    with Uploader(args.bucket, args.prefix, **tuning) as uploader:
        plans = {path: _plan(uploader, path, args) for path in paths if path.is_dir()}

        def estimate(path: Path) -> int:
            """Bytes a path may send: the bar's total (skipped files lower it later)."""
            if path in plans:
                return sum(planned.size for planned in plans[path])
            try:
                return path.stat().st_size
            except OSError:
                return 0

        with tqdm(
            total=sum(estimate(path) for path in paths),
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            disable=args.dry_run or args.no_lines or not sys.stderr.isatty(),
        ) as bar:
            lock = threading.Lock()

            def progress(sent: int) -> None:  # called from the transfer threads
                with lock:
                    bar.update(sent)

            job = _Job(uploader, args, progress, report, lines, plans)
            for index, path in enumerate(paths):
                if job.upload(path):
                    break
                with lock:  # what is left to send, now that this path is done
                    bar.total = bar.n + sum(estimate(rest) for rest in paths[index + 1 :])
                    bar.refresh()
        seconds = time.monotonic() - started
    if output.json_mode:
        output.document(document(report, uploader, args.dry_run, seconds))
        return report.exit_code
    # Each failure was printed once, on stderr, when it happened: the summary only counts them.
    output.line(summary(report, uploader, args.dry_run, seconds))
    return report.exit_code


def _usage_problem(args: argparse.Namespace, paths: Sequence[Path]) -> str | None:
    for path in paths:
        if not path.exists():
            return f"{path}: no such file or directory"
        if not (path.is_file() or path.is_dir()):
            return f"{path}: not a regular file or a directory"
    if args.key is not None and (len(paths) != 1 or not paths[0].is_file()):
        return "--key names one object: give exactly one file (not a directory) with it"
    names = [path.name for path in paths if path.is_file()]
    taken = sorted({name for name in names if names.count(name) > 1})
    if taken and args.key is None:
        return f"several files would become the same key: {', '.join(taken)}"
    return None


def _usage_error(output: Output, message: str) -> int:
    output.error(message, label="taskcreds upload: error")
    if output.json_mode:
        error = {"type": "UsageError", "message": message, "hint": None, "retryable": False}
        output.document({"ok": False, "exit_code": EXIT_USAGE, "error": error})
    return EXIT_USAGE


@dataclass
class _Job:
    """One run of the command: uploads each path argument and records what happened."""

    uploader: Uploader
    args: argparse.Namespace
    progress: Callable[[int], None]
    report: Report
    lines: Lines
    #: What each directory holds to upload (``Uploader.plan_dir``).
    plans: dict[Path, list[PlannedFile]]

    def upload(self, path: Path) -> bool:
        """Upload one path argument; True when the error means the rest would fail too."""
        try:
            if path.is_dir():
                return self._directory(path)
            self._file(path)
        except UploadError as exc:
            self._failed(str(path), exc.key, exc, self._reason(exc))
        except TaskCredsError as exc:  # credentials or configuration: the rest would fail too
            self._failed(str(path), None, exc, str(exc))
            return True
        except OSError as exc:
            self._failed(str(path), None, exc, str(exc))
        return False

    def _file(self, path: Path) -> None:
        uploader, args = self.uploader, self.args
        if args.dry_run:
            from taskcreds.upload import PlannedFile

            key = uploader.key_for(args.key if args.key is not None else path.name)
            self._planned(PlannedFile(str(path), key, path.stat().st_size))
            return
        result = uploader.upload_file(
            path, args.key, overwrite=not args.no_overwrite, progress=self.progress
        )
        self.report.uploaded.append(result)
        self.lines(uploaded_line(result))

    def _directory(self, path: Path) -> bool:
        """True when a file failed for want of credentials or configuration (see ``upload``)."""
        from taskcreds.upload import FailedFile, UploadResult

        bucket, args = self.uploader.bucket, self.args
        planned = {item.key: item for item in self.plans.get(path, [])}

        def on_file(event: FileEvent) -> None:  # each file as it settles: a log shows progress
            if event.status == "uploaded" and isinstance(event.outcome, UploadResult):
                self.lines(uploaded_line(event.outcome))
            elif event.status == "skipped":
                self.lines(f"skipped s3://{bucket}/{event.key} (unchanged)")
            elif event.status == "planned" and event.key in planned:
                self._planned(planned[event.key])
            elif event.status == "planned" and event.key is not None:  # not in the plan
                self.report.planned.append(event.key)
                self.lines(f"would upload s3://{bucket}/{event.key} from {event.path}")
            elif event.status == "failed" and isinstance(event.outcome, FailedFile):
                self.lines.err(f"failed {event.path}: {self._failed_reason(event.outcome)}")

        result: DirectoryResult = self.uploader.upload_dir(
            path,
            include=args.include,
            exclude=args.exclude,
            skip_unchanged=args.skip_unchanged,
            dry_run=args.dry_run,
            on_file=on_file,
            keep_going=args.keep_going,
            overwrite=not args.no_overwrite,
            progress=self.progress,
        )
        self.report.uploaded.extend(result.uploaded)
        self.report.skipped.extend(result.skipped)
        for failed in result.failed:  # printed by on_file already
            self._record(failed.path, failed.key, failed.error, self._failed_reason(failed))
        if result.not_attempted:
            self.report.not_attempted.extend(result.not_attempted)
            # The upload failures come after those of the listing: the last one stopped it.
            error = f" with {result.failed[-1].error_type}" if result.failed else ""
            count = len(result.not_attempted)
            self.lines.err(
                f"stopped {path}: its first file failed{error}, so the other {count} "
                f"{'file was' if count == 1 else 'files were'} not attempted (they would fail "
                "the same way); --keep-going tries every file"
            )
        if not (result.uploaded or result.skipped or result.planned or result.failed):
            message = nothing_to_upload(path, args)
            self.report.nothing_to_upload.append({"path": str(path), "message": message})
            self.lines.err(message)
        return any(failure.exit_code < EXIT_ACCESS_DENIED for failure in self.report.failed)

    def _planned(self, planned: PlannedFile) -> None:
        """Record a file a dry run would upload, and print it with its key."""
        self.report.planned.append(planned.key)
        self.report.planned_files.append(planned)
        self.lines(
            f"would upload s3://{self.uploader.bucket}/{planned.key} ({planned.size} bytes) "
            f"from {planned.path}"
        )

    def _failed(
        self, path: str, key: str | None, error: TaskCredsError | OSError, reason: str
    ) -> None:
        """Record a failure and print it, once, on stderr."""
        self._record(path, key, error, reason)
        self.lines.err(f"failed {path}: {reason}")

    def _record(
        self, path: str, key: str | None, error: TaskCredsError | OSError, reason: str
    ) -> None:
        # OSError and anything else that failed one file: an upload failure.
        code = exit_code_for(error) if isinstance(error, TaskCredsError) else EXIT_UPLOAD
        self.report.failed.append(Failure(path, key, type(error).__name__, reason, code))

    def _failed_reason(self, failed: FailedFile) -> str:
        if isinstance(failed.error, ObjectExistsError) and failed.key is not None:
            return exists_reason(self.uploader.bucket, failed.key)
        return failed.reason

    def _reason(self, error: UploadError) -> str:
        if isinstance(error, ObjectExistsError) and error.key is not None:
            return exists_reason(self.uploader.bucket, error.key)
        return str(error)


def _plan(uploader: Uploader, path: Path, args: argparse.Namespace) -> list[PlannedFile]:
    """The files of a directory argument to upload (none when it cannot be read: the upload
    then reports why)."""
    try:
        return uploader.plan_dir(path, include=args.include, exclude=args.exclude)
    except (OSError, TaskCredsError):
        return []
