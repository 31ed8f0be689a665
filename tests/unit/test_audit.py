"""taskcreds.audit: the line parser, user agents, time bounds, file discovery and the summary.

Every log here is written in the agent's documented format (docs/agent-contract.md, "The audit log").
"""

from __future__ import annotations

import gzip
import os
import tracemalloc
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from taskcreds.audit import (
    FREQUENT_MIN_REQUESTS,
    MAX_LINE_LENGTH,
    AuditRecord,
    AuditSummary,
    UserAgent,
    find_log_files,
    format_time,
    is_audit_log_name,
    parse_line,
    parse_time_bound,
    parse_user_agent,
    summarise,
)

ACCOUNT = "123456789012"
TASK_A = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TASK_B = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/5a6b7c8d9e0f11223344556677889900"
INSTANCE = (
    f"arn:aws:ecs:us-east-1:{ACCOUNT}:container-instance/prod/9a8b7c6d5e4f30211203f4e5d6c7b8a9"
)
BOTO = (
    "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.0 os/linux#5.10.228 md/arch#x86_64 lang/python#3.12.7"
)
GO = "aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64"
UTC = timezone.utc
T0 = datetime(2026, 11, 29, 21, 0, 0, tzinfo=UTC)


def at(minutes: float = 0.0) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def line(
    time: str,
    *,
    status: int = 200,
    client: str = "172.17.0.3:41234",
    agent: str = BOTO,
    task: str = TASK_A,
    event: str = "GetCredentials",
    cluster: str = "prod",
    instance: str = INSTANCE,
) -> str:
    return (
        f'{time} {status} {client} "/v2/credentials" "{agent}" {task} {event} 2 {cluster} '
        f"{instance}\n"
    )


def error_line(
    time: str, status: int = 429, client: str = "172.17.0.3:41240", rest: str = "-"
) -> str:
    return f'{time} {status} {client} "/v2/credentials" "{BOTO}" {rest}\n'.replace("  \n", "\n")


# -- parse_line ----------------------------------------------------------------------------------


def test_parses_the_documented_example() -> None:
    record = parse_line(line("2026-11-29T21:04:05Z"))
    assert record == AuditRecord(
        time="2026-11-29T21:04:05Z",
        status=200,
        client="172.17.0.3:41234",
        path="/v2/credentials",
        user_agent=BOTO,
        task_arn=TASK_A,
        event_type="GetCredentials",
        version="2",
        cluster="prod",
        container_instance=INSTANCE,
    )
    assert record.timestamp == datetime(2026, 11, 29, 21, 4, 5, tzinfo=UTC)
    assert record.client_ip == "172.17.0.3"
    assert record.ok


def test_execution_role_event_and_dash_fields() -> None:
    record = parse_line(line(at(), agent="-", event="GetCredentialsExecutionRole", cluster="-"))
    assert record is not None
    assert record.event_type == "GetCredentialsExecutionRole"
    assert record.user_agent is None
    assert record.cluster is None


@pytest.mark.parametrize(
    "text",
    [
        f'{at()} 429 172.17.0.3:41240 "/v2/credentials" "{BOTO}" - GetCredentials 2 prod -\n',
        f'{at()} 429 172.17.0.3:41240 "/v2/credentials" "{BOTO}" -\n',
        f'{at()} 429 172.17.0.3:41240 "/v2/credentials" "{BOTO}"\n',
        f'{at()} 429 172.17.0.3:41240 "/v2/credentials" "{BOTO}"',
        f'{at()} 429 172.17.0.3:41240 "/v2/credentials"\n',
        f'{at()} 400 172.17.0.3:41240 "/v2/credentials" "-" - - 2\n',
    ],
)
def test_error_lines_may_lack_trailing_fields(text: str) -> None:
    record = parse_line(text)
    assert record is not None
    assert record.status in (400, 429)
    assert record.task_arn is None
    assert record.container_instance is None
    assert record.client_ip == "172.17.0.3"
    assert not record.ok


def test_a_successful_line_needs_every_field() -> None:
    full = line(at())
    assert parse_line(full) is not None
    cut = full.rsplit(" ", 1)[0] + "\n"  # no container instance
    assert parse_line(cut) is None
    assert parse_line(f'{at()} 200 172.17.0.3:41234 "/v2/credentials" "{BOTO}" -\n') is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "garbage\n",
        "2026-11-29T21:04:05Z 200 172.17.0.3:41234\n",
        line(at())[:70],  # truncated inside the user agent
        line(at())[:150],  # truncated inside the task ARN: a 2xx missing fields
        line("2026-13-29T21:04:05Z"),  # month 13
        line("2026-02-30T21:04:05Z"),  # no such day
        line("2026-11-29T24:04:05Z"),
        line("2026-11-29T21:04:60Z"),
        line("2026-11-29T21:04:05+01:00"),  # the agent writes UTC
        line("2026-11-29 21:04:05Z"),
        line("２０２６-11-29T21:04:05Z"),
        line(at(), status=20),
        line(at(), status=2000),
        line(at()).replace(" 200 ", " ２００ "),
        line(at()).replace(" 200 ", " +20 "),
        line(at()).replace(" 200 ", "  200 "),
        line(at()) + " extra",
        line(at()).replace("\n", " extra\n"),
        line(at()).replace('" arn', '"arn'),
        '"a" "b" "c" "d"\n',
    ],
)
def test_not_audit_lines(text: str) -> None:
    assert parse_line(text) is None


def test_fractional_seconds_and_crlf() -> None:
    record = parse_line(line("2026-11-29T21:04:05.123456Z").replace("\n", "\r\n"))
    assert record is not None
    assert record.time == "2026-11-29T21:04:05Z"
    assert record.container_instance == INSTANCE


def test_a_quote_inside_the_user_agent() -> None:
    record = parse_line(line(at(), agent='curl/8.5.0 "quoted" thing'))
    assert record is not None
    assert record.user_agent == 'curl/8.5.0 "quoted" thing'
    assert record.task_arn == TASK_A


def test_ipv6_client_address() -> None:
    record = parse_line(line(at(), client="[fd00:ec2::5]:41234"))
    assert record is not None
    assert record.client_ip == "[fd00:ec2::5]"


_FIELD = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(st.text(max_size=400))
@example("2026-11-29T21:04:05Z 200 ")
@example('0000-01-01T00:00:00Z 200 a "" "" b c d e f')
@example('2026-11-29T21:04:05Z 200 x "" ""')
def test_arbitrary_text_never_raises(text: str) -> None:
    assert isinstance(parse_line(text), (AuditRecord, type(None)))


@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert isinstance(parse_line(data.decode("utf-8", errors="replace")), (AuditRecord, type(None)))


@given(
    st.lists(_FIELD, min_size=10, max_size=10),
    st.integers(min_value=0, max_value=10),
)
def test_arbitrary_fields_in_the_right_shape_never_raise(fields: list[str], keep: int) -> None:
    time, status, client, path, agent, task, event, version, cluster, instance = fields
    text = (
        f'{time} {status} {client} "{path}" "{agent}" {task} {event} {version} {cluster} {instance}'
    )
    record = parse_line(" ".join(text.split(" ")[: keep + 1]))
    assert isinstance(record, (AuditRecord, type(None)))


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    st.sampled_from([200, 201, 400, 404, 429, 500, 503]),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789/.-#:_", min_size=1, max_size=40),
)
def test_well_formed_lines_round_trip(moment: datetime, status: int, word: str) -> None:
    written = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    record = parse_line(line(written, status=status, task=word, cluster=word))
    assert record is not None
    assert record.time == written
    assert record.timestamp == moment.replace(microsecond=0)
    assert record.status == status
    assert record.task_arn == (None if word == "-" else word)


# -- user agents ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (BOTO, UserAgent("boto3", "1.43.11")),
        ("Botocore/1.34.0 ua/2.0 os/linux", UserAgent("botocore", "1.34.0")),
        (GO, UserAgent("aws-sdk-go-v2", "1.30.0")),
        ("aws-sdk-go/1.44.0 (go1.21; linux; amd64)", UserAgent("aws-sdk-go", "1.44.0")),
        (
            "aws-sdk-java/2.25.60 Linux/5.10 OpenJDK_64-Bit_Server_VM/17",
            UserAgent("aws-sdk-java", "2.25.60"),
        ),
        ("aws-sdk-js/3.600.0 ua/2.1 os/linux lang/js", UserAgent("aws-sdk-js", "3.600.0")),
        ("aws-sdk-nodejs/2.1500.0 linux/v18.0.0", UserAgent("aws-sdk-js", "2.1500.0")),
        ("aws-cli/2.17.0 md/awscrt#0.20.11 ua/2.0", UserAgent("aws-cli", "2.17.0")),
        ("aws-cli/1.32.0 Python/3.11 Linux/5.10 botocore/1.34.0", UserAgent("aws-cli", "1.32.0")),
        ("taskcreds/0.1.0", UserAgent("taskcreds", "0.1.0")),
        ("my-app/4.2 Boto3/1.35.0 md/Botocore#1.35.0", UserAgent("boto3", "1.35.0")),
        ("python-requests/2.31.0", UserAgent("python-requests/2.31.0")),
        ("curl/8.5.0", UserAgent("curl/8.5.0")),
        ("Mozilla/5.0 (X11; Linux x86_64)", UserAgent("Mozilla/5.0")),
        ("-", UserAgent("-")),
        ("", UserAgent("-")),
        ("   ", UserAgent("-")),
        (None, UserAgent("-")),
    ],
)
def test_user_agents(agent: str | None, expected: UserAgent) -> None:
    assert parse_user_agent(agent) == expected


def test_user_agent_text() -> None:
    assert str(UserAgent("boto3", "1.43.11")) == "boto3 1.43.11"
    assert str(UserAgent("curl/8.5.0")) == "curl/8.5.0"


@given(st.text(max_size=200))
def test_any_user_agent_gives_a_family(agent: str) -> None:
    assert parse_user_agent(agent).family


# -- time bounds ---------------------------------------------------------------------------------

NOW = datetime(2026, 11, 29, 23, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T21:00:00Z", datetime(2026, 11, 29, 21, tzinfo=UTC)),
        ("2026-11-29t21:00:00z", datetime(2026, 11, 29, 21, tzinfo=UTC)),
        ("2026-11-29T22:00:00+01:00", datetime(2026, 11, 29, 21, tzinfo=UTC)),
        ("2026-11-29T21:00:00.500Z", datetime(2026, 11, 29, 21, 0, 0, 500000, tzinfo=UTC)),
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("1w", NOW - timedelta(weeks=1)),
    ],
)
def test_time_bounds(text: str, expected: datetime) -> None:
    assert parse_time_bound(text, NOW) == expected


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2h30m", "-2h", "2026-11-29", "2026-11-29T21:00:00", "99999999999d"]
)
def test_bad_time_bounds(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339|before the year 1"):
        parse_time_bound(text, NOW)


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",  # the year 0 in UTC
        "9999-12-31T23:59:59-01:00",  # the year 10000 in UTC
        "0001-01-01T00:59:59+01:00",
    ],
)
def test_times_outside_the_calendar_once_in_utc_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError, match="outside the years 1 to 9999"):
        parse_time_bound(text, NOW)


def test_a_duration_with_too_many_digits_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="before the year 1") as caught:
        parse_time_bound("9" * 5000 + "s", NOW)
    assert len(str(caught.value)) < 200  # the text is cut short in the message


def test_the_extreme_bounds_themselves_work_and_compare_as_strings() -> None:
    since = parse_time_bound("0001-01-01T00:00:00Z", NOW)
    until = parse_time_bound("0999-01-01T00:00:00Z", NOW)
    assert format_time(since) == "0001-01-01T00:00:00Z"
    assert format_time(until) == "0999-01-01T00:00:00Z"  # not "999-...", which sorts after 2026
    assert format_time(parse_time_bound("9999-12-31T23:59:59Z", NOW)) == "9999-12-31T23:59:59Z"
    report = summary_of([line(at(0))], since=since, until=until).report()
    assert (report.parsed, report.in_range) == (1, 0)


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


# -- the summary ---------------------------------------------------------------------------------


def summary_of(lines: list[str], **filters: object) -> AuditSummary:
    summary = AuditSummary(**filters)  # type: ignore[arg-type]
    summary.add_lines(lines, "test.log")
    return summary


def test_summary_per_task() -> None:
    lines = [
        line(at(0), event="GetCredentialsExecutionRole", agent="-"),
        line(at(1)),
        line(at(61), status=200),
        line(at(121), agent=GO, client="172.17.0.3:50000"),
        line(at(30), task=TASK_B, client="172.17.0.4:1", cluster="batch", agent="curl/8.5.0"),
        error_line(
            at(5), 503, "172.17.0.3:41299", rest=f"{TASK_A} GetCredentials 2 prod {INSTANCE}"
        ),
    ]
    report = summary_of(lines).report()
    assert [task.task_arn for task in report.tasks] == [TASK_A, TASK_B]
    a, b = report.tasks
    assert a.requests == 5
    assert a.first == T0
    assert a.last == T0 + timedelta(minutes=121)
    assert dict(a.event_types) == {"GetCredentials": 4, "GetCredentialsExecutionRole": 1}
    assert dict(a.statuses) == {200: 4, 503: 1}
    assert dict(a.user_agents) == {
        UserAgent("boto3", "1.43.11"): 3,
        UserAgent("-"): 1,
        UserAgent("aws-sdk-go-v2", "1.30.0"): 1,
    }
    assert a.clusters == ("prod",)
    assert a.container_instances == (INSTANCE,)
    assert a.clients == ("172.17.0.3",)
    assert a.task_id == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert a.span_minutes == 121
    assert not a.fetches_too_often
    assert b.clusters == ("batch",)
    assert dict(b.user_agents) == {UserAgent("curl/8.5.0"): 1}
    assert b.span_minutes == 0
    assert b.per_minute == 1.0
    # a failure that names its task counts for the task and in the errors
    assert [(p.status, p.client, p.count, p.tasks) for p in report.errors] == [
        (503, "172.17.0.3", 1, (TASK_A,))
    ]
    assert report.lines == report.parsed == report.in_range == 6
    assert report.unparsed == 0


def test_errors_and_throttling_are_grouped_by_client_and_matched_to_tasks() -> None:
    lines = [
        line(at(0)),
        line(at(0), task=TASK_B, client="172.17.0.4:1"),
        error_line(at(1), 429),
        error_line(at(2), 429, "172.17.0.3:5"),
        error_line(at(3), 429, rest=""),
        error_line(at(4), 400, "172.17.0.9:7", rest="- - 2"),
        f'{at(5)} 404 172.17.0.9:8 "/v1/credentials"\n',
        f'{at(6)} 400 172.17.0.4:9 "/v2/credentials" "-" -\n',
    ]
    report = summary_of(lines).report()
    assert [(p.status, p.client, p.count) for p in report.throttled] == [(429, "172.17.0.3", 3)]
    throttled = report.throttled[0]
    assert throttled.first == T0 + timedelta(minutes=1)
    assert throttled.last == T0 + timedelta(minutes=3)
    assert throttled.tasks == (TASK_A,)  # by address: TASK_A's requests come from 172.17.0.3
    assert sorted((p.status, p.client, p.tasks) for p in report.errors) == [
        (400, "172.17.0.4", (TASK_B,)),
        (400, "172.17.0.9", ()),
        (404, "172.17.0.9", ()),
    ]
    assert [task.requests for task in report.tasks] == [1, 1]  # failures with "-" are not a task's
    document = report.to_dict()
    assert document["totals"]["throttled"] == 3
    assert document["totals"]["errors"] == 3


def test_unparsed_lines_are_counted_and_the_first_five_kept() -> None:
    lines = [line(at(0)), *[f"garbage {n}\n" for n in range(7)], line(at(1))[:100]]
    report = summary_of(lines).report()
    assert report.lines == 9
    assert report.parsed == 1
    assert report.unparsed == 8
    assert [(u.source, u.line_number, u.text) for u in report.unparsed_examples] == [
        ("test.log", n + 2, f"garbage {n}") for n in range(5)
    ]


def test_a_long_unparsed_line_is_shortened() -> None:
    report = summary_of(["x" * 1000]).report()
    assert report.unparsed_examples[0].text == "x" * 160 + "…"


def test_since_is_inclusive_and_until_exclusive() -> None:
    lines = [line(at(minute)) for minute in range(10)]
    since, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=5)
    report = summary_of(lines, since=since, until=until).report()
    assert report.parsed == 10
    assert report.in_range == 3
    (task,) = report.tasks
    assert (task.requests, task.first, task.last) == (3, since, until - timedelta(minutes=1))
    assert report.since == since
    assert report.until == until


def test_since_filters_errors_too() -> None:
    lines = [error_line(at(0)), error_line(at(10))]
    report = summary_of(lines, since=T0 + timedelta(minutes=5)).report()
    assert [p.count for p in report.throttled] == [1]


@pytest.mark.parametrize("task", [TASK_B, "5a6b7c8d9e0f11223344556677889900"])
def test_task_filter_by_arn_or_id(task: str) -> None:
    lines = [
        line(at(0)),
        line(at(1), task=TASK_B, client="172.17.0.4:1"),
        line(at(2), task=TASK_B, client="172.17.0.4:2"),
        error_line(at(3), 429, "172.17.0.4:3"),  # from TASK_B's address
        error_line(at(3), 429, "172.17.0.3:3"),  # from TASK_A's
        error_line(at(4), 503, "172.17.0.4:4", rest=f"{TASK_A} GetCredentials 2 prod -"),
    ]
    report = summary_of(lines, task=task).report()
    assert [t.task_arn for t in report.tasks] == [TASK_B]
    assert report.tasks[0].requests == 2
    assert [(p.client, p.tasks) for p in report.throttled] == [("172.17.0.4", (TASK_B,))]
    assert report.errors == ()  # that 503 names TASK_A
    assert report.task_filter == task


def test_task_filter_does_not_match_a_partial_id() -> None:
    report = summary_of([line(at(0))], task="a5b4c3d2e1f0").report()
    assert report.tasks == ()


def many(count: int, every_seconds: float, task: str = TASK_A) -> list[str]:
    return [line(at(n * every_seconds / 60), task=task) for n in range(count)]


def test_fetching_more_than_once_a_minute_is_flagged() -> None:
    report = summary_of(many(120, 15)).report()  # 4 a minute for 30 minutes
    (task,) = report.tasks
    assert task.fetches_too_often
    assert round(task.per_minute, 2) == 4.03
    assert report.frequent == (task,)
    assert report.to_dict()["fetches_too_often"][0]["task_arn"] == TASK_A


@pytest.mark.parametrize(
    ("count", "every_seconds", "flagged"),
    [
        (FREQUENT_MIN_REQUESTS - 1, 1, False),  # workers starting together: too few to judge
        (FREQUENT_MIN_REQUESTS, 1, True),
        (40, 90, False),  # every 90 s: 0.68 a minute
        (100, 45, True),
        (30, 120, False),
        (6, 3600, False),  # a healthy process: refreshes every hour
    ],
)
def test_the_threshold(count: int, every_seconds: float, flagged: bool) -> None:
    (task,) = summary_of(many(count, every_seconds)).report().tasks
    assert task.fetches_too_often is flagged, (task.requests, task.span_minutes, task.per_minute)


def test_60_requests_a_minute_apart_are_just_over_once_a_minute() -> None:
    # 60 requests span 59 minutes: 60 / 59 > 1, so even a steady once-a-minute poll is flagged.
    (task,) = summary_of(many(60, 60)).report().tasks
    assert task.span_minutes == 59
    assert task.per_minute > 1
    assert task.fetches_too_often


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


_LINES = st.one_of(
    st.builds(
        line,
        st.sampled_from(
            [at(0), at(1.5), at(90), "2026-11-29T21:00:00.25Z", "2026-02-30T00:00:00Z"]
        ),
        status=st.sampled_from([200, 204, 400, 429, 503]),
        client=st.sampled_from(["172.17.0.3:1", "172.17.0.4:2", "-", "[::1]:3"]),
        agent=st.sampled_from([BOTO, GO, "-", 'a "quoted" agent']),
        task=st.sampled_from([TASK_A, TASK_B, "-"]),
        event=st.sampled_from(["GetCredentials", "GetCredentialsExecutionRole", "-"]),
    ),
    st.builds(
        error_line,
        st.sampled_from([at(0), at(3)]),
        st.sampled_from([400, 429, 500]),
        rest=st.sampled_from(["", "-", "- GetCredentials", f"{TASK_A} GetCredentials 2 prod -"]),
    ),
    st.text(max_size=120),
    st.builds(lambda text, cut: text[:cut], st.just(line(at(0))), st.integers(0, 300)),
)


@given(st.lists(_LINES, max_size=40))
def test_the_summary_agrees_with_parse_line(lines: list[str]) -> None:
    """The summary's inlined fast path accepts exactly what parse_line accepts."""
    lines = [text.replace("\n", " ").replace("\r", " ") + "\n" for text in lines]
    records = [record for record in map(parse_line, lines) if record is not None]
    report = summary_of(lines).report()
    assert report.parsed == len(records)
    assert report.unparsed == len(lines) - len(records)
    expected = Counter(record.task_arn for record in records if record.task_arn)
    assert {task.task_arn: task.requests for task in report.tasks} == dict(expected)
    failures = [r for r in records if not r.ok or r.task_arn is None]
    assert sum(p.count for p in (*report.errors, *report.throttled)) == len(failures)
