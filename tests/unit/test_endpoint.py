"""Endpoint resolution: the FULL_URI allowlist, RELATIVE_URI, and token sources. No network."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcreds import (
    ConfigError,
    NotInContainerError,
    TokenError,
    UnsupportedHostError,
    resolve_endpoint,
)
from taskcreds.endpoint import redact_url, url_secrets

FULL = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
RELATIVE = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"

# What the fake resolver answers; tests never send a DNS query.
NAMES: dict[str, list[str]] = {
    "localhost": ["127.0.0.1", "::1"],
    "loopback-only.test": ["127.0.0.5"],
    "mixed.test": ["127.0.0.1", "10.0.0.1"],
    "public.test": ["93.184.216.34"],
    "imds-alias.test": ["169.254.169.254"],
    "ecs-alias.test": ["169.254.170.2"],
    "eks-v6-alias.test": ["fd00:ec2::23"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "host.docker.internal": ["192.168.65.254"],
    "credentials-sidecar": ["172.18.0.4"],
    "sneaky-optin.test": ["169.254.169.254"],
}


def fake_resolver(host: str) -> Sequence[str]:
    if host in NAMES:
        return NAMES[host]
    raise OSError(f"unknown host {host}")


ALLOWED = [
    "http://127.0.0.1/creds",
    "http://127.0.0.1:51679/creds",
    "http://127.1.2.3:8080/v1/credentials",
    "http://[::1]:51679/creds",
    "http://[::1]/creds",
    "http://169.254.170.2/v2/credentials/abc",
    "http://169.254.170.23/v1/credentials",
    "http://[fd00:ec2::23]/v1/credentials",
    "http://[FD00:EC2::23]:80/v1/credentials",
    "http://localhost:51679/creds",
    "http://LOCALHOST/creds",
    "http://loopback-only.test/creds",
    "http://ecs-alias.test/creds",
    "http://eks-v6-alias.test/creds",
    "http://mapped.test/creds",
    "http://[::ffff:127.0.0.1]/creds",
    "HTTP://127.0.0.1/creds",
    "https://credentials.example.com/creds",
    "https://10.0.0.1/creds",
    "https://anything.test:8443/x?y=z",
]

REJECTED = [
    ("http://169.254.169.254/latest/meta-data/", UnsupportedHostError),
    ("http://[fd00:ec2::254]/latest", UnsupportedHostError),
    ("https://169.254.169.254/creds", UnsupportedHostError),
    ("http://10.0.0.1/creds", UnsupportedHostError),
    ("http://192.168.1.1/creds", UnsupportedHostError),
    ("http://0.0.0.0/creds", UnsupportedHostError),
    ("http://public.test/creds", UnsupportedHostError),
    ("http://mixed.test/creds", UnsupportedHostError),
    ("http://imds-alias.test/creds", UnsupportedHostError),
    ("http://no-such-host.test/creds", UnsupportedHostError),
    ("http://2852039166/", UnsupportedHostError),  # decimal 169.254.169.254
    ("http://2130706433/", UnsupportedHostError),  # decimal 127.0.0.1: ambiguous, refused
    ("http://0xa9fea9fe/", UnsupportedHostError),  # hex
    ("http://0xA9.0xFE.0xA9.0xFE/", UnsupportedHostError),
    ("http://0251.0376.0251.0376/", UnsupportedHostError),  # octal
    ("http://0177.0.0.1/", UnsupportedHostError),  # octal loopback: still not canonical
    ("http://127.1/", UnsupportedHostError),  # short form
    ("http://169.254.43518/", UnsupportedHostError),  # 169.254.169.254 in two parts
    ("http://[::ffff:169.254.169.254]/", UnsupportedHostError),  # IPv4-mapped IPv6
    ("http://[::ffff:a9fe:a9fe]/", UnsupportedHostError),
    ("http://[::ffff:10.0.0.1]/", UnsupportedHostError),
    ("http://[fe80::1%25eth0]/", UnsupportedHostError),  # zone id
    ("http://[2001:db8::1]/", UnsupportedHostError),
    ("http://host.docker.internal/creds", UnsupportedHostError),  # not opted in
    ("http://user:pass@127.0.0.1/creds", ConfigError),
    ("http://127.0.0.1@169.254.169.254/", ConfigError),
    ("http://@127.0.0.1/creds", ConfigError),
    ("ftp://127.0.0.1/creds", ConfigError),
    ("file:///etc/passwd", ConfigError),
    ("gopher://127.0.0.1/", ConfigError),
    ("127.0.0.1/creds", ConfigError),
    ("http:///creds", ConfigError),
    ("http://127.0.0.1:99999/creds", ConfigError),
    ("http://127.0.0.1:port/creds", ConfigError),
    ("http://127.0.0.1\\@evil.test/", ConfigError),
    ("http://127.0.0.1/cr eds", ConfigError),
    ("http://127.0.0.1/creds\r\nX-Injected: 1", ConfigError),
]


@pytest.mark.parametrize("url", ALLOWED)
def test_full_uri_allowed(url: str) -> None:
    endpoint = resolve_endpoint({FULL: url}, resolver=fake_resolver)
    assert endpoint.url == url
    assert endpoint.kind == "full"


@pytest.mark.parametrize(("url", "error"), REJECTED)
def test_full_uri_rejected(url: str, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        resolve_endpoint({FULL: url}, resolver=fake_resolver)
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, ValueError)


def test_table_is_large_enough() -> None:
    assert len(ALLOWED) + len(REJECTED) >= 40


def test_unsupported_host_names_host_and_allowed_list() -> None:
    with pytest.raises(UnsupportedHostError) as info:
        resolve_endpoint({FULL: "http://10.0.0.1/creds"}, resolver=fake_resolver)
    assert info.value.host == "10.0.0.1"
    assert "169.254.170.2" in info.value.allowed
    assert "10.0.0.1" in str(info.value)
    assert "TASKCREDS_ALLOWED_HOSTS" in str(info.value)


@pytest.mark.parametrize(
    "url", ["http://host.docker.internal/creds", "http://credentials-sidecar:8080/creds"]
)
def test_opt_in_hosts_by_argument(url: str) -> None:
    endpoint = resolve_endpoint(
        {FULL: url},
        allowed_hosts=["host.docker.internal", "credentials-sidecar"],
        resolver=fake_resolver,
    )
    assert endpoint.url == url


def test_opt_in_hosts_by_variable() -> None:
    environ = {
        FULL: "http://credentials-sidecar:8080/creds",
        "TASKCREDS_ALLOWED_HOSTS": " host.docker.internal , Credentials-Sidecar ",
    }
    assert resolve_endpoint(environ, resolver=fake_resolver).url.endswith("/creds")


def test_opt_in_address() -> None:
    environ = {FULL: "http://10.0.0.1/creds", "TASKCREDS_ALLOWED_HOSTS": "10.0.0.1"}
    assert resolve_endpoint(environ, resolver=fake_resolver).url == "http://10.0.0.1/creds"


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://sneaky-optin.test/"])
def test_opt_in_never_allows_instance_metadata(url: str) -> None:
    with pytest.raises(UnsupportedHostError):
        resolve_endpoint(
            {FULL: url},
            allowed_hosts=["169.254.169.254", "sneaky-optin.test"],
            resolver=fake_resolver,
        )


def test_relative_uri_joins_ecs_address() -> None:
    endpoint = resolve_endpoint({RELATIVE: "/v2/credentials/abc-123"}, resolver=fake_resolver)
    assert endpoint.url == "http://169.254.170.2/v2/credentials/abc-123"
    assert endpoint.kind == "relative"
    assert endpoint.variable == RELATIVE
    assert endpoint.warnings == ()


def test_relative_wins_over_full_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    environ = {RELATIVE: "/v2/credentials/x", FULL: "http://127.0.0.1/creds"}
    endpoint = resolve_endpoint(environ, resolver=fake_resolver)
    assert endpoint.kind == "relative"
    assert "both" in endpoint.warnings[0]
    assert "both" in caplog.text


@pytest.mark.parametrize("relative", ["@evil.test/creds", "v2/credentials/x", "/v2/cred entials"])
def test_relative_uri_must_be_a_path(relative: str) -> None:
    # "http://169.254.170.2" + "@evil.test/creds" would send the request to evil.test.
    with pytest.raises(ConfigError):
        resolve_endpoint({RELATIVE: relative}, resolver=fake_resolver)


@pytest.mark.parametrize("environ", [{}, {RELATIVE: "", FULL: ""}, {"AWS_REGION": "us-east-1"}])
def test_not_in_container(environ: dict[str, str]) -> None:
    with pytest.raises(NotInContainerError) as info:
        resolve_endpoint(environ, resolver=fake_resolver)
    assert info.value.hint is not None
    assert "taskRoleArn" in info.value.hint


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FULL, "http://127.0.0.1:9/creds")
    monkeypatch.delenv(RELATIVE, raising=False)
    assert resolve_endpoint(resolver=fake_resolver).url == "http://127.0.0.1:9/creds"


def test_token_file_beats_token_and_is_reread(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    environ = {
        FULL: "http://169.254.170.23/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "plain-token",
    }
    endpoint = resolve_endpoint(environ, resolver=fake_resolver)
    assert endpoint.token_source is not None
    assert endpoint.token_source.kind == "file"
    assert endpoint.authorization() == "first-token"
    token_file.write_text("rotated-token")
    assert endpoint.authorization() == "rotated-token"
    assert "first-token" not in repr(endpoint)
    assert "plain-token" not in repr(endpoint)


def test_plain_token() -> None:
    environ = {FULL: "http://127.0.0.1/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "s3cr3t"}
    endpoint = resolve_endpoint(environ, resolver=fake_resolver)
    assert endpoint.authorization() == "s3cr3t"
    assert "s3cr3t" not in repr(endpoint)
    assert str(endpoint.token_source) == "variable AWS_CONTAINER_AUTHORIZATION_TOKEN"


def test_no_token() -> None:
    endpoint = resolve_endpoint({FULL: "http://127.0.0.1/creds"}, resolver=fake_resolver)
    assert endpoint.token_source is None
    assert endpoint.authorization() is None


@pytest.mark.parametrize("token", ["a\r\nX-Evil: 1", "a\nb", "a\rb"])
def test_plain_token_with_line_break(token: str) -> None:
    environ = {FULL: "http://127.0.0.1/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": token}
    with pytest.raises(TokenError) as info:
        resolve_endpoint(environ, resolver=fake_resolver)
    assert token not in str(info.value)


@pytest.mark.parametrize("content", ["a\nb\n", "line\r\n\n", "x\n\n", "\n"])
def test_token_file_with_inner_line_break(tmp_path: Path, content: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content, newline="")
    environ = {
        FULL: "http://127.0.0.1/creds",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
    }
    endpoint = resolve_endpoint(environ, resolver=fake_resolver)
    with pytest.raises(TokenError):
        endpoint.authorization()


def test_token_file_crlf_ending_tolerated(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(b"tok\r\n")
    environ = {
        FULL: "http://127.0.0.1/c",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
    }
    assert resolve_endpoint(environ, resolver=fake_resolver).authorization() == "tok"


def test_missing_token_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    environ = {FULL: "http://127.0.0.1/c", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(missing)}
    endpoint = resolve_endpoint(environ, resolver=fake_resolver)
    with pytest.raises(TokenError) as info:
        endpoint.authorization()
    assert str(missing) in str(info.value)
    assert info.value.source == str(missing)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "http://169.254.170.2/v2/credentials/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab",
            "http://169.254.170.2/v2/credentials/…90ab",
        ),
        (
            "http://169.254.170.2/v1/credentials?id=secret-id",
            "http://169.254.170.2/v1/credentials?id=…",
        ),
        ("http://127.0.0.1:51679/creds", "http://127.0.0.1:51679/creds"),
        ("http://169.254.170.23/v1/credentials", "http://169.254.170.23/v1/credentials"),
    ],
)
def test_display_url_hides_credentials_id(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("token", [" leading", "trailing ", "caf\u00e9", "\u2603", "tab\there"])
def test_token_must_be_sendable_as_a_header(token: str) -> None:
    environ = {FULL: "http://127.0.0.1/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": token}
    with pytest.raises(TokenError, match="HTTP header"):
        resolve_endpoint(environ, resolver=fake_resolver)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/", "http://2852039166/", "http://[fe80::1%25eth0]/"]
)
def test_hint_never_suggests_an_opt_in_that_cannot_work(url: str) -> None:
    with pytest.raises(UnsupportedHostError) as info:
        resolve_endpoint({FULL: url}, resolver=fake_resolver)
    assert "TASKCREDS_ALLOWED_HOSTS" not in (info.value.hint or "")


def test_endpoint_repr_hides_credentials_id() -> None:
    endpoint = resolve_endpoint({RELATIVE: "/v2/credentials/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab"})
    assert "0f1e2d3c" not in repr(endpoint)
    assert "…90ab" in repr(endpoint)


@pytest.mark.parametrize(
    "body",
    [
        b"x" * 295 + b"tok-SECRET-VALUE-0123456789 echoed",  # straddles the 300-character cut
        b'{"code": "tok-SECRET-VALUE-0123456789", "message": "bad"}',
        b'{"Code": "E", "Message": "Authorization: tok-SECRET-VALUE-0123456789"}',
    ],
)
def test_echoed_token_never_reaches_an_error(body: bytes) -> None:
    from taskcreds.fetch import _http_error

    error = _http_error(400, body, "http://127.0.0.1/creds", ("tok-SECRET-VALUE-0123456789",))
    for text in (str(error), repr(error.detail), repr(error.code)):
        assert "tok-SECRET" not in text


# -- hardening: hosts urllib3 cannot encode, bounded resolution, rebinding, the token file -------


@pytest.mark.parametrize(
    "url",
    [
        "http://１２７.0.0.1/creds",  # fullwidth digits: 127.0.0.1 after NFKC
        "http://ⓛocalhost/creds",
        "http://a。b/creds",  # ideographic full stop
        "https://a。b/creds",
        "https://１２７.0.0.1/creds",
    ],
)
def test_host_that_is_not_ascii_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_endpoint({FULL: url}, resolver=fake_resolver)
    assert "ASCII" in str(info.value) or "not a valid URL" in str(info.value)


def test_resolution_is_bounded_by_its_timeout() -> None:
    release = threading.Event()

    def never_answers(host: str) -> Sequence[str]:
        release.wait(30)
        return ["127.0.0.1"]

    started = time.monotonic()
    try:
        with pytest.raises(UnsupportedHostError, match="could not be resolved"):
            resolve_endpoint(
                {FULL: "http://slow-dns.test/creds"}, resolver=never_answers, timeout=0.2
            )
    finally:
        release.set()
    assert time.monotonic() - started < 5


class Rebinding:
    """Answers the first query with a loopback address and every later one with IMDS."""

    def __init__(self, first: str = "127.0.0.1", later: str = "169.254.169.254") -> None:
        self.answers = [first]
        self.later = later
        self.queries = 0

    def __call__(self, host: str) -> Sequence[str]:
        self.queries += 1
        return [self.answers.pop(0) if self.answers else self.later]


def test_connect_addresses_checks_the_answer_again() -> None:
    resolver = Rebinding()
    endpoint = resolve_endpoint({FULL: "http://rebind.test:9/creds"}, resolver=resolver)
    assert resolver.queries == 1
    with pytest.raises(UnsupportedHostError, match="instance metadata"):
        endpoint.connect_addresses(1.0)
    assert resolver.queries == 2


def test_connect_addresses_keeps_the_opt_in() -> None:
    names = {"sidecar.test": ["10.1.2.3"]}
    endpoint = resolve_endpoint(
        {FULL: "http://sidecar.test/creds"},
        allowed_hosts=["sidecar.test"],
        resolver=lambda host: names[host],
    )
    assert endpoint.connect_addresses(1.0) == ("10.1.2.3",)
    names["sidecar.test"] = ["169.254.169.254"]  # an opt-in never reaches IMDS
    with pytest.raises(UnsupportedHostError):
        endpoint.connect_addresses(1.0)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/creds", "http://[::1]/creds"])
def test_connect_addresses_none_for_a_literal(url: str) -> None:
    def must_not_resolve(host: str) -> Sequence[str]:
        raise AssertionError("a literal address needs no resolution")

    assert resolve_endpoint({FULL: url}, resolver=must_not_resolve).connect_addresses(1.0) is None


def test_connect_addresses_https_name_is_pinned_not_checked() -> None:
    endpoint = resolve_endpoint(
        {FULL: "https://creds.example/v1"}, resolver=lambda host: ["10.9.8.7"]
    )
    assert endpoint.connect_addresses(1.0) == ("10.9.8.7",)


def test_connect_addresses_https_name_never_reaches_the_metadata_service() -> None:
    endpoint = resolve_endpoint(
        {FULL: "https://creds.example/v1"}, resolver=lambda host: ["169.254.169.254"]
    )
    with pytest.raises(UnsupportedHostError, match="instance metadata"):
        endpoint.connect_addresses(1.0)


def test_connect_addresses_times_out() -> None:
    release = threading.Event()
    answers = iter([["127.0.0.1"]])

    def slow_later(host: str) -> Sequence[str]:
        try:
            return next(answers)
        except StopIteration:
            release.wait(30)
            return ["127.0.0.1"]

    endpoint = resolve_endpoint({FULL: "http://slow.test/creds"}, resolver=slow_later)
    try:
        with pytest.raises(TimeoutError):
            endpoint.connect_addresses(0.1)
    finally:
        release.set()


def test_token_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "token"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    endpoint = resolve_endpoint(
        {FULL: "http://127.0.0.1/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(fifo)},
        resolver=fake_resolver,
    )
    with pytest.raises(TokenError, match="not a regular file"):
        endpoint.authorization()


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "/"])
def test_token_file_that_is_a_device_or_directory_is_refused(path: str) -> None:
    endpoint = resolve_endpoint(
        {FULL: "http://127.0.0.1/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": path},
        resolver=fake_resolver,
    )
    with pytest.raises(TokenError):
        endpoint.authorization()


def test_huge_token_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "token"
    big.write_bytes(b"a" * (16 * 1024 + 1))
    endpoint = resolve_endpoint(
        {FULL: "http://127.0.0.1/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(big)},
        resolver=fake_resolver,
    )
    with pytest.raises(TokenError, match="larger than 16 KiB"):
        endpoint.authorization()
    big.write_bytes(b"a" * (16 * 1024))  # exactly the limit is still a token
    assert endpoint.authorization() == "a" * (16 * 1024)


def test_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_bytes(b"")
    endpoint = resolve_endpoint(
        {FULL: "http://127.0.0.1/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(empty)},
        resolver=fake_resolver,
    )
    with pytest.raises(TokenError, match="empty"):
        endpoint.authorization()


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("http://169.254.170.2/v2/credentials/0f1e2d3c-90ab", ["0f1e2d3c-90ab"]),
        ("http://127.0.0.1:9/v1/credentials?id=abc-123", ["abc-123"]),
        ("http://127.0.0.1:9/creds", []),
    ],
)
def test_url_secrets_are_what_redact_url_hides(url: str, secrets: list[str]) -> None:
    assert url_secrets(url) == secrets
    for secret in secrets:
        assert secret not in redact_url(url)


URL_PARTS = st.text(
    alphabet=st.sampled_from([*list("abc019.:/[]@%?#=&-_~ \\\t\nxX"), "０", "ⓛ", "。", "é"]),
    max_size=40,
)


@given(scheme=st.sampled_from(["http://", "https://", "ftp://", ""]), rest=URL_PARTS)
def test_any_full_uri_gives_an_endpoint_or_a_config_error(scheme: str, rest: str) -> None:
    try:
        endpoint = resolve_endpoint({FULL: scheme + rest}, resolver=fake_resolver)
    except ConfigError:
        return
    assert endpoint.url == scheme + rest
    assert "169.254.169.254" not in endpoint.url
