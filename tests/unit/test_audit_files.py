"""taskcreds.audit._files: file names, discovery, gzip, the line limit, and reading files.

Every log here is written in the agent's documented format (docs/agent-contract.md, "The audit log").
"""

from __future__ import annotations

import gzip
import os
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest

from taskcreds.audit import (
    MAX_LINE_LENGTH,
    AuditSummary,
    find_log_files,
    is_audit_log_name,
    summarise,
)

from ._audit_lines import T0, at, line, many, summary_of

# -- files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("audit.log", True),
        ("audit.log.1", True),
        ("audit.log.24", True),
        ("audit.log.24.gz", True),
        ("audit.log.2026-11-29-21", True),
        ("audit.log.2026112921", True),
        ("audit.log.2026112921.gz", True),
        ("audit.log.gz", True),
        ("audit.log.bak", False),
        ("agent.log", False),
        ("audit.log.1.tmp", False),
        ("audit.log.2026-11-29", False),
        ("xaudit.log", False),
    ],
)
def test_log_names(name: str, ok: bool) -> None:
    assert is_audit_log_name(name) is ok


def touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_text("")


def test_size_rotated_directory_is_read_oldest_first(tmp_path: Path) -> None:
    touch(tmp_path, "audit.log", "audit.log.1", "audit.log.2.gz", "audit.log.10", "audit.log.24")
    touch(tmp_path, "agent.log", "audit.log.bak", "notes.txt")
    (tmp_path / "audit.log.3").mkdir()
    names = [path.name for path in find_log_files([tmp_path])]
    assert names == ["audit.log.24", "audit.log.10", "audit.log.2.gz", "audit.log.1", "audit.log"]


def test_hourly_directory_is_read_by_hour_in_both_namings(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "audit.log",
        "audit.log.2026-11-29-22",
        "audit.log.2026112921.gz",
        "audit.log.2026-11-28-23",
        "audit.log.2026112920",
    )
    names = [path.name for path in find_log_files([tmp_path])]
    assert names == [
        "audit.log.2026-11-28-23",
        "audit.log.2026112920",
        "audit.log.2026112921.gz",
        "audit.log.2026-11-29-22",
        "audit.log",
    ]


def test_files_are_read_as_given_and_once(tmp_path: Path) -> None:
    touch(tmp_path, "audit.log", "audit.log.1", "copy.txt")
    given = [tmp_path / "copy.txt", tmp_path, tmp_path / "audit.log"]
    names = [path.name for path in find_log_files(given)]
    assert names == ["copy.txt", "audit.log.1", "audit.log"]


def test_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        find_log_files([tmp_path / "nope.log"])
    with pytest.raises(FileNotFoundError, match=r"no audit\.log files in directory"):
        find_log_files([tmp_path])


# -- reading files -------------------------------------------------------------------------------


def test_files_plain_rotated_gzipped_and_a_truncated_last_line(tmp_path: Path) -> None:
    (tmp_path / "audit.log.2").write_text(line(at(0)) + line(at(1)))
    with gzip.open(tmp_path / "audit.log.1.gz", "wt") as out:
        out.write(line(at(2)) + "not a line\n" + line(at(3)))
    (tmp_path / "audit.log").write_text(line(at(4)) + line(at(5))[:-40])  # still being written
    report = summarise([tmp_path])
    assert [Path(name).name for name in report.files] == [
        "audit.log.2",
        "audit.log.1.gz",
        "audit.log",
    ]
    assert (report.lines, report.parsed, report.unparsed) == (7, 5, 2)
    assert [(Path(u.source).name, u.line_number) for u in report.unparsed_examples] == [
        ("audit.log.1.gz", 2),
        ("audit.log", 2),
    ]
    assert report.unparsed_examples[1].reason.startswith("no newline at the end")
    (task,) = report.tasks
    assert (task.requests, task.first, task.last) == (5, T0, T0 + timedelta(minutes=4))
    assert report.file_errors == ()


def test_a_whole_last_line_without_newline_is_still_incomplete(tmp_path: Path) -> None:
    # The agent ends every line with a newline; without it the last field may be cut short.
    (tmp_path / "audit.log").write_text(line(at(0)) + line(at(1)).rstrip("\n"))
    report = summarise([tmp_path / "audit.log"])
    assert (report.parsed, report.unparsed) == (1, 1)
    # Lines given directly need no newline.
    assert summary_of([line(at(0)).rstrip("\n")]).report().parsed == 1


def test_gzip_is_detected_by_content(tmp_path: Path) -> None:
    copied = tmp_path / "from-the-host.log"
    copied.write_bytes(gzip.compress(line(at(0)).encode()))
    assert summarise([copied]).tasks[0].requests == 1


def test_a_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    data = gzip.compress("".join(many(2000, 1)).encode())
    cut = tmp_path / "audit.log.1.gz"
    cut.write_bytes(data[: len(data) // 2])
    report = summarise([cut])
    assert len(report.file_errors) == 1
    assert "audit.log.1.gz" in report.file_errors[0]
    assert 0 < report.parsed < 2000
    assert report.unparsed <= 1  # the line cut by the end of the data


def test_undecodable_bytes_are_unparsed_not_fatal(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"\xff\xfe\x00garbage\n" + line(at(0)).encode() + b"\x80\x81\n")
    report = summarise([log])
    assert (report.lines, report.parsed, report.unparsed) == (3, 1, 2)


def test_an_unreadable_file_is_reported(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        unreadable = tmp_path / "audit.log"
        unreadable.mkdir()  # root can read any file; a directory named as a file cannot be opened
        summary = AuditSummary()
        summary.add_file(unreadable)
    else:
        unreadable = tmp_path / "audit.log"
        unreadable.write_text(line(at(0)))
        unreadable.chmod(0)
        summary = AuditSummary()
        summary.add_file(unreadable)
    report = summary.report()
    assert len(report.file_errors) == 1
    assert report.files == (str(unreadable),)


def test_memory_stays_flat(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    with log.open("w") as out:
        for n in range(60_000):
            out.write(line(at(n / 600), client=f"172.17.0.3:{30000 + n % 30000}"))
    assert log.stat().st_size > 15_000_000
    tracemalloc.start()
    try:
        report = summarise([log])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.parsed == 60_000
    assert peak < 2_000_000, peak


def test_a_huge_line_in_a_small_gzip_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    log = tmp_path / "audit.log.1.gz"
    with gzip.open(log, "wb") as out:  # 50 MiB of 'a' on line 2: about 50 KiB compressed
        out.write(line(at(0)).encode())
        chunk = b"a" * (1024 * 1024)
        for _ in range(50):
            out.write(chunk)
        out.write(b"\n")
        out.write(line(at(1)).encode())
    assert log.stat().st_size < 1024 * 1024
    tracemalloc.start()
    try:
        report = summarise([log])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024, peak
    assert (report.lines, report.parsed, report.unparsed) == (3, 2, 1)
    (unparsed,) = report.unparsed_examples
    assert (unparsed.source, unparsed.line_number) == (str(log), 2)
    assert unparsed.text == "a" * 160 + "…"
    assert unparsed.reason.startswith("longer than 64 KiB")
    assert report.tasks[0].requests == 2
    assert report.file_errors == ()


@pytest.mark.parametrize(
    ("length", "newline", "reason"),
    [
        (MAX_LINE_LENGTH - 1, True, None),  # with its newline, exactly the limit: a line
        (MAX_LINE_LENGTH, True, "longer than"),
        (MAX_LINE_LENGTH - 1, False, "no newline"),  # the last line, cut off
        (MAX_LINE_LENGTH, False, "longer than"),
        (3 * MAX_LINE_LENGTH, True, "longer than"),
        (3 * MAX_LINE_LENGTH + 7, False, "longer than"),
    ],
)
def test_the_line_length_limit(
    tmp_path: Path, length: int, newline: bool, reason: str | None
) -> None:
    # A valid audit line padded with spaces inside the user agent, to exactly `length`.
    good = line(at(0))
    padded = good.replace('" arn:', " " * (length - len(good) + 1) + '" arn:', 1)
    padded = padded if newline else padded.rstrip("\n")
    assert len(padded) == length + newline
    log = tmp_path / "audit.log"
    log.write_text(line(at(1)) + padded + ("" if not newline else line(at(2))))
    report = summarise([log])
    assert report.lines == (3 if newline else 2)
    if reason is None:
        assert report.unparsed == 0
    else:
        (unparsed,) = report.unparsed_examples
        assert unparsed.line_number == 2
        assert unparsed.reason.startswith(reason)
        assert report.parsed == report.lines - 1


def test_add_lines_with_max_length_drops_the_pieces_of_a_long_line() -> None:
    summary = AuditSummary()
    pieces = ["a" * 8, "b" * 8, "c" * 3 + "\n", line(at(0)), "d" * 8, "e" * 8]  # as readline(8)
    summary.add_lines(pieces, "test.log", complete=True, max_length=8)
    report = summary.report()
    assert (report.lines, report.parsed, report.unparsed) == (3, 1, 2)
    assert [(u.line_number, u.text) for u in report.unparsed_examples] == [
        (1, "a" * 8),
        (3, "d" * 8),
    ]
    # Without max_length the same strings are lines as given.
    assert summary_of(pieces).report().lines == 6
