"""taskcreds.audit._summary and ._report: counts per task and client, filters, the too-often flag.

Every log here is written in the agent's documented format (docs/agent-contract.md, "The audit log").
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcreds.audit import FREQUENT_MIN_REQUESTS, UserAgent, parse_line

from ._audit_lines import (
    BOTO,
    GO,
    INSTANCE,
    T0,
    TASK_A,
    TASK_B,
    at,
    error_line,
    line,
    many,
    summary_of,
)

# -- the summary ---------------------------------------------------------------------------------


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
