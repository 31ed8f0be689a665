"""taskcreds.audit._parse: the line parser and the time bounds.

Every log here is written in the agent's documented format (docs/agent-contract.md, "The audit log").
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from taskcreds.audit import AuditRecord, format_time, parse_line, parse_time_bound
from taskcreds.credentials import format_timestamp

from ._audit_lines import BOTO, INSTANCE, TASK_A, UTC, at, line, summary_of

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


def test_format_time_is_the_one_in_credentials() -> None:
    assert format_time is format_timestamp
    moment = datetime(999, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    assert format_timestamp(moment) == "0999-01-02T03:04:05Z"
