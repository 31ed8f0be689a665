"""Parsing the agent's bodies, and the Credentials value."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcreds import Credentials, MalformedResponseError
from taskcreds.credentials import mask_key_id, parse_credentials, parse_error_body, parse_expiration

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY"
TOKEN = "IQoJb3JpZ2luX2VjECANARYTOKEN"


def body(**fields: Any) -> bytes:
    document = {
        "RoleArn": "arn:aws:iam::123456789012:role/AppA",
        "AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
        "SecretAccessKey": SECRET,
        "Token": TOKEN,
        "Expiration": "2026-11-29T23:04:05Z",
    }
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def test_ecs_body() -> None:
    creds = parse_credentials(body())
    assert creds.access_key_id == "ASIAIOSFODNN7EXAMPLE"
    assert creds.secret_access_key == SECRET
    assert creds.token == TOKEN
    assert creds.expiration == datetime(2026, 11, 29, 23, 4, 5, tzinfo=timezone.utc)
    assert creds.role_arn == "arn:aws:iam::123456789012:role/AppA"
    assert creds.account_id == "123456789012"  # derived from the role ARN


def test_eks_pod_identity_body() -> None:
    creds = parse_credentials(body(RoleArn=..., AccountId="210987654321"))
    assert creds.role_arn is None
    assert creds.account_id == "210987654321"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T23:04:05Z", datetime(2026, 11, 29, 23, 4, 5, tzinfo=timezone.utc)),
        ("2026-11-29T23:04:05.5Z", datetime(2026, 11, 29, 23, 4, 5, 500000, tzinfo=timezone.utc)),
        (
            "2026-11-29T23:04:05.123456789Z",
            datetime(2026, 11, 29, 23, 4, 5, 123456, tzinfo=timezone.utc),
        ),
        ("2026-11-30T01:04:05+02:00", datetime(2026, 11, 29, 23, 4, 5, tzinfo=timezone.utc)),
        ("2026-11-29T20:34:05-02:30", datetime(2026, 11, 29, 23, 4, 5, tzinfo=timezone.utc)),
        ("2026-11-29t23:04:05z", datetime(2026, 11, 29, 23, 4, 5, tzinfo=timezone.utc)),
    ],
)
def test_expiration_formats(text: str, expected: datetime) -> None:
    parsed = parse_expiration(text)
    assert parsed == expected
    assert parsed.tzinfo is timezone.utc


@pytest.mark.parametrize(
    "text",
    ["2026-11-29T23:04:05", "2026-11-29", "tomorrow", "2026-13-01T00:00:00Z", "", "1764457445"],
)
def test_bad_expiration(text: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        parse_credentials(body(Expiration=text))
    assert info.value.field == "Expiration"


@pytest.mark.parametrize("field", ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"])
def test_missing_field_is_named(field: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        parse_credentials(body(**{field: ...}))
    assert info.value.field == field
    assert field in str(info.value)
    assert SECRET not in str(info.value)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("value", [123, None, "", ["x"], {"a": 1}])
def test_wrong_type_is_named(value: object) -> None:
    with pytest.raises(MalformedResponseError) as info:
        parse_credentials(body(Token=value))
    assert info.value.field == "Token"


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'"x"', b"\xff\xfe", b"[" * 100000])
def test_not_a_document(raw: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        parse_credentials(raw)


def test_wrong_type_error_does_not_echo_value() -> None:
    with pytest.raises(MalformedResponseError) as info:
        parse_credentials(body(SecretAccessKey=12345678901234))
    assert "12345678901234" not in str(info.value)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_give_credentials_or_typed_error(raw: bytes) -> None:
    try:
        parse_credentials(raw)
    except MalformedResponseError:
        pass


FIELDS = ["AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn", "AccountId", "X"]
field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=2),
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda moment: moment.isoformat()),
)


@given(st.dictionaries(st.sampled_from(FIELDS), field_values))
def test_arbitrary_documents_give_credentials_or_typed_error(document: dict[str, Any]) -> None:
    try:
        creds = parse_credentials(json.dumps(document).encode())
    except MalformedResponseError as exc:
        assert exc.field is None or exc.field in FIELDS
    else:
        assert creds.expiration.tzinfo is timezone.utc
        assert creds.access_key_id == document["AccessKeyId"]


@given(st.datetimes(timezones=st.just(timezone.utc)), st.integers(-23 * 60, 23 * 60))
def test_expiration_round_trip(moment: datetime, offset_minutes: int) -> None:
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    text = local.isoformat()
    if moment.year < 1000 or local.year < 1000:
        return
    assert parse_expiration(text) == moment


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (
            b'{"code":"InvalidIdInRequest","message":"CredentialsV2Request: Credentials not found",'
            b'"HTTPErrorCode":400}',
            "InvalidIdInRequest",
            "CredentialsV2Request: Credentials not found",
        ),
        (b'{"Code":"Throttling","Message":"slow down"}', "Throttling", "slow down"),
        (
            b"You have reached maximum request limit.",
            None,
            "You have reached maximum request limit.",
        ),
        (b"404 page not found\n", None, "404 page not found"),
        (b"", None, None),
        (b"{broken", None, "{broken"),
        (b'{"code": 5}', None, None),
    ],
)
def test_error_bodies(raw: bytes, code: str | None, message: str | None) -> None:
    assert parse_error_body(raw) == (code, message)


def test_error_message_is_shortened() -> None:
    code, message = parse_error_body(b"x" * 10000)
    assert code is None
    assert message is not None
    assert len(message) < 400


@given(st.binary(max_size=300))
def test_arbitrary_error_bodies_never_raise(raw: bytes) -> None:
    parse_error_body(raw)


def test_repr_and_str_hide_secrets() -> None:
    creds = parse_credentials(body())
    for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}"):
        assert SECRET not in text
        assert TOKEN not in text
        assert "ASIAIOSFODNN7EXAMPLE" not in text
        assert "ASIA…MPLE" in text


def test_credentials_are_immutable() -> None:
    creds = parse_credentials(body())
    with pytest.raises(AttributeError):
        creds.token = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "masked"), [("ASIAIOSFODNN7EXAMPLE", "ASIA…MPLE"), ("SHORT", "…"), ("", "…")]
)
def test_mask_key_id(key: str, masked: str) -> None:
    assert mask_key_id(key) == masked


def test_time_left() -> None:
    creds = Credentials("A" * 20, "s", "t", datetime(2026, 1, 1, 1, tzinfo=timezone.utc))
    assert creds.time_left(datetime(2026, 1, 1, tzinfo=timezone.utc)) == timedelta(hours=1)


# -- hardening: expirations at the edges of datetime, secrets echoed in decoded text -----------


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-01:00",  # valid RFC 3339, past year 9999 in UTC
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:30:00-00:31",
    ],
)
def test_expiration_that_leaves_datetime_range_in_utc_is_malformed(text: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        parse_expiration(text)
    assert info.value.field == "Expiration"
    with pytest.raises(MalformedResponseError):
        parse_credentials(body(Expiration=text))


rfc3339_parts = st.tuples(
    st.one_of(st.sampled_from([1, 2, 1969, 1970, 9998, 9999]), st.integers(1, 9999)),
    st.integers(1, 12),
    st.integers(1, 31),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 60),  # a leap second
    st.one_of(
        st.just("Z"), st.tuples(st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59))
    ),
)


@given(rfc3339_parts)
def test_any_rfc3339_expiration_parses_to_utc_or_is_malformed(parts: tuple[Any, ...]) -> None:
    year, month, day, hour, minute, second, zone = parts
    suffix = zone if zone == "Z" else f"{zone[0]}{zone[1]:02d}:{zone[2]:02d}"
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{suffix}"
    try:
        moment = parse_expiration(text)
    except MalformedResponseError as exc:
        assert exc.field == "Expiration"
    else:
        assert moment.tzinfo is timezone.utc


ECHOED = "tok/SECRET<0123456789>&more"


@pytest.mark.parametrize(
    "raw",
    [
        # JSON may escape "/" and "<": the raw bytes do not contain the token, the text does.
        b'{"code":"Bad","message":"token tok\\/SECRET\\u003c0123456789\\u003e\\u0026more refused"}',
        b'{"Code":"tok\\/SECRET\\u003c0123456789\\u003e\\u0026more","Message":"x"}',
        (b"<p>no route for tok%2FSECRET%3C0123456789%3E%26more</p>"),
        (b"<p>tok/SECRET&lt;0123456789&gt;&amp;more</p>"),
    ],
)
def test_secrets_are_redacted_in_the_decoded_text(raw: bytes) -> None:
    assert ECHOED.encode() not in raw  # byte-level redaction would have missed each of these
    code, message = parse_error_body(raw, redact=[ECHOED])
    for text in (code or "", message or ""):
        assert "SECRET" not in text
    assert "[redacted]" in (code or "") + (message or "")


def test_redaction_happens_before_shortening() -> None:
    raw = json.dumps({"message": "x" * 295 + ECHOED}).encode()
    _, message = parse_error_body(raw, redact=[ECHOED])
    assert message is not None
    assert "tok" not in message[290:]
