"""What ``taskcreds upload`` did, and how it says so: the lines per object, the summary and the
JSON document (no boto here: :mod:`taskcreds.cli.upload` imports this before :func:`run`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskcreds.cli._common import EXIT_OK, Output, printable

if TYPE_CHECKING:
    from taskcreds.upload import PlannedFile, Uploader, UploadResult


@dataclass
class Failure:
    path: str
    key: str | None
    error: str
    reason: str
    exit_code: int


@dataclass
class Report:
    """Everything the command did, for the lines, the summary and the JSON document."""

    uploaded: list[UploadResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    #: Dry run: each file planned, with its path and size.
    planned_files: list[PlannedFile] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    #: Keys of directories stopped after their first file was refused.
    not_attempted: list[str] = field(default_factory=list)
    #: Directories with no file to upload: ``{"path": ..., "message": ...}``.
    nothing_to_upload: list[dict[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return min((failure.exit_code for failure in self.failed), default=EXIT_OK)


class Lines:
    """Lines that do not tear the progress bar on stderr apart: results per object to stdout
    (unless ``--quiet``), failures and notes to stderr (text mode only, escaped)."""

    def __init__(self, output: Output, write_mode: Callable[..., Any], *, per_object: bool) -> None:
        self._output = output
        self._write_mode = write_mode
        self._per_object = per_object

    def __call__(self, text: str) -> None:
        if self._per_object:
            with self._write_mode(file=self._output.out):
                self._output.line(text)
                self._output.out.flush()  # a log (not a terminal) gets it now, not at the end

    def err(self, text: str) -> None:
        if self._output.json_mode or self._output.quiet:
            return
        with self._write_mode(file=self._output.err):
            print(printable(text), file=self._output.err, flush=True)


def nothing_to_upload(path: Path, args: argparse.Namespace) -> str:
    has_files = any(names for _, _, names in os.walk(path))
    if has_files and (args.include or args.exclude):
        return f"nothing to upload: no file in {path} matches --include/--exclude"
    if has_files:
        return f"nothing to upload: no regular file in {path}"
    return f"nothing to upload: {path} is empty"


def exists_reason(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key} already exists and --no-overwrite was given; it was left as it was"


def uploaded_line(result: UploadResult) -> str:
    details = [f"{result.size} bytes"]
    if result.checksum:
        details.append(f"{result.checksum_algorithm} {result.checksum}")
    if result.multipart:
        details.append("multipart")
    return f"uploaded {result.uri} ({', '.join(details)})"


def summary(report: Report, uploader: Uploader, dry_run: bool, seconds: float) -> str:
    where = f"s3://{uploader.bucket}/{uploader.prefix}"
    counts = f"{len(report.skipped)} skipped (unchanged), {len(report.failed)} failed"
    if report.not_attempted:
        counts += f", {len(report.not_attempted)} not attempted"
    if dry_run:
        return f"dry run: {len(report.planned)} to upload to {where}, {counts}; nothing was written"
    size = sum(result.size for result in report.uploaded)
    done = f"{len(report.uploaded)} uploaded ({size} bytes) to {where}"
    return f"{done}, {counts} in {seconds:.1f} s"


def document(report: Report, uploader: Uploader, dry_run: bool, seconds: float) -> dict[str, Any]:
    return {
        "ok": not report.failed,
        "exit_code": report.exit_code,
        "dry_run": dry_run,
        "bucket": uploader.bucket,
        "prefix": uploader.prefix,
        "uploaded": [asdict(result) for result in report.uploaded],
        "skipped": report.skipped,
        "planned": report.planned,
        "planned_files": [asdict(planned) for planned in report.planned_files],
        "failed": [asdict(failure) for failure in report.failed],
        "not_attempted": report.not_attempted,
        "nothing_to_upload": report.nothing_to_upload,
        "totals": {
            "uploaded": len(report.uploaded),
            "bytes": sum(result.size for result in report.uploaded),
            "skipped": len(report.skipped),
            "planned": len(report.planned),
            "failed": len(report.failed),
            "not_attempted": len(report.not_attempted),
            "seconds": round(seconds, 3),
        },
    }
