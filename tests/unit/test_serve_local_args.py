"""``serve-local`` argument handling in-process, and the AWS-backed sources against botocore's Stubber.

Nothing here serves: every case ends before the server starts, or calls a source directly. No test
sends a request anywhere (the STS client is stubbed; the credential chain is pointed at nothing).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskcreds import CredentialProvider, CredentialsExpiredError
from taskcreds.cli import main
from taskcreds.cli import serve_local as serve_local_command
from taskcreds.errors import ConfigError
from taskcreds.local import AssumeRoleSource, CredentialSourceError, SessionCredentialsSource

ROLE = "arn:aws:iam::123456789012:role/AppA"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An environment in which boto3's default chain finds nothing and asks nobody."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return monkeypatch


def serve_local(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["serve-local", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- arguments


def test_help_shows_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = serve_local(["--help"], capsys)
    assert code == 0
    assert "serve-local --role-arn arn:aws:iam::123456789012:role/AppA" in out
    for flag in ("--fake", "--fail-first", "--throttle", "--pod-identity-token-file", "--json"):
        assert flag in out
    assert "--allow-host NAME" in out
    compat_help = " ".join(out.split("--compat-paths", 2)[2].split())
    assert compat_help.startswith("also answer amazon-ecs-local-container-endpoints'")
    assert "RISK: they need no credentials ID" in compat_help


def test_allowed_hosts_and_compat_paths_are_parsed() -> None:
    parser = argparse.ArgumentParser()
    serve_local_command.add_arguments(parser)
    defaults = parser.parse_args([])
    assert (defaults.allow_host, defaults.compat_paths) == ([], False)
    hosts = ["--allow-host", "Credentials", "--allow-host", "[::1]", "--allow-host", "10.0.0.7"]
    args = parser.parse_args([*hosts, "--compat-paths"])
    assert (args.allow_host, args.compat_paths) == (["credentials", "::1", "10.0.0.7"], True)


def test_an_allowed_host_passes_to_the_next_check(
    no_aws: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = serve_local(["--allow-host", "credentials", "--role-arn", "AppA"], capsys)
    assert code == 2  # parsed: it is the role ARN that is wrong
    assert "not an IAM role ARN" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--fake", "--role-arn", ROLE],
        ["--fake", "--port", "65536"],
        ["--fake", "--port", "http"],
        ["--fake", "--fail-status", "99"],
        ["--fake", "--fail-first", "-1"],
        ["--fake", "--latency", "-0.5"],
        ["--fake", "--latency", "nan"],
        ["--fake", "--lifetime", "0"],
        ["--fake", "--credentials-id", "a/b"],
        ["--fake", "--credentials-id", ""],
        ["--fake", "--burst", "0", "--throttle", "1"],
        ["--fake", "--allow-host", "credentials:51679"],
        ["--fake", "--allow-host", "*.example"],
        ["--fake", "--allow-host", "http://credentials"],
        ["--fake", "--allow-host", ""],
        ["--fake", "--unknown"],
    ],
)
def test_malformed_values_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = serve_local(argv, capsys)
    assert (code, out) == (1, "")
    assert "error:" in err


def test_a_bad_role_arn_is_a_configuration_error_with_a_hint(
    no_aws: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = serve_local(["--role-arn", "AppA"], capsys)
    assert (code, out) == (2, "")
    assert "not an IAM role ARN: 'AppA'" in err
    assert "hint: a role ARN looks like arn:aws:iam::123456789012:role/AppA" in err


def test_a_bad_role_arn_in_json_mode(
    no_aws: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = serve_local(["--json", "--role-arn", "arn:aws:iam::12345:role/AppA"], capsys)
    document = json.loads(out)
    assert code == 2
    assert document["ok"] is False
    assert document["exit_code"] == 2
    assert document["error"]["type"] == "ConfigError"
    assert "role ARN" in document["error"]["hint"]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--lifetime", "60"], "--lifetime"),
        (["--fake", "--duration", "900"], "--duration"),
        (["--fake", "--burst", "5"], "--burst"),
        (["--role-session-name", "dev"], "--role-session-name"),
    ],
)
def test_flags_for_another_source_are_refused(
    argv: list[str], flag: str, no_aws: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = serve_local(argv, capsys)
    assert code == 2
    assert f"{flag} only applies with" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role-arn", ROLE, "--duration", "60"], "duration must be 900 to 43200 seconds"),
        (["--duration", "200000"], "duration must be 900 to 129600 seconds"),
        (["--role-arn", ROLE, "--role-session-name", "a b"], "not a valid role session name"),
    ],
)
def test_out_of_range_aws_settings_fail_before_any_request(
    argv: list[str], message: str, no_aws: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = serve_local(argv, capsys)
    assert code == 2
    assert message in err


def test_a_missing_or_empty_token_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing-token"
    code, _, err = serve_local(["--fake", "--pod-identity-token-file", str(missing)], capsys)
    assert code == 2
    assert "cannot read the pod identity token file" in err
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    code, _, err = serve_local(["--fake", "--pod-identity-token-file", str(empty)], capsys)
    assert code == 2
    assert "is empty" in err


def test_no_aws_credentials_fail_fast_with_a_hint(
    no_aws: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = serve_local([], capsys)
    assert (code, out) == (2, "")
    assert "no AWS credentials found" in err
    assert "--fake" in err


# --- the sources, with a stubbed STS


class FakeSession:
    """What the sources use of a boto3 Session, with a Stubber on its one STS client."""

    def __init__(self, credentials: Any = None) -> None:
        import boto3
        from botocore.stub import Stubber

        real = boto3.Session(
            aws_access_key_id="AKIAUNITTEST00000000",
            aws_secret_access_key="unit-test-secret",
            region_name="us-east-1",
        )
        self.region_name = "us-east-1"
        self.sts = real.client("sts", endpoint_url="http://127.0.0.1:9")  # never called
        self.stubber = Stubber(self.sts)
        self.stubber.activate()
        self.credentials = credentials
        self.clients = 0

    def client(self, service: str, **kwargs: Any) -> Any:
        assert service == "sts"
        self.clients += 1
        return self.sts

    def get_credentials(self) -> Any:
        return self.credentials


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def sts_credentials(expiration: datetime, key: str = "ASIAUNITTEST00000001") -> dict[str, Any]:
    return {
        "AccessKeyId": key,
        "SecretAccessKey": "secret-" + key,
        "SessionToken": "token-" + key,
        "Expiration": expiration,
    }


def assumed(expiration: datetime, key: str = "ASIAUNITTEST00000001") -> dict[str, Any]:
    return {"Credentials": sts_credentials(expiration, key)}


@pytest.fixture
def sessions() -> Iterator[Callable[..., FakeSession]]:
    made: list[FakeSession] = []

    def make(credentials: Any = None) -> FakeSession:
        made.append(FakeSession(credentials))
        return made[-1]

    yield make
    for fake in made:
        fake.stubber.assert_no_pending_responses()
        fake.sts.close()


@pytest.fixture
def session(sessions: Callable[..., FakeSession]) -> FakeSession:
    return sessions()


def assume_role_source(session: FakeSession, clock: Clock, **kwargs: Any) -> AssumeRoleSource:
    return AssumeRoleSource(ROLE, session=session, clock=clock, **kwargs)  # type: ignore[arg-type]


def cached(source: AssumeRoleSource, clock: Clock) -> CredentialProvider:
    """The source as serve-local serves it: cached by a provider on the same (fake) clock."""
    return CredentialProvider.from_source(
        source,
        clock=clock,
        monotonic=lambda: (clock.now - T0).total_seconds(),  # noqa: PLW0108 - read now, each call
        jitter=lambda: 0.0,
    )


def test_assume_role_source_fetches_on_every_call(session: FakeSession) -> None:
    expected = {"RoleArn": ROLE, "RoleSessionName": "dev", "DurationSeconds": 900}
    session.stubber.add_response(
        "assume_role", assumed(T0 + timedelta(minutes=15)), expected_params=expected
    )
    session.stubber.add_response(
        "assume_role", assumed(T0 + timedelta(minutes=15), "ASIAUNITTEST00000002"), expected
    )
    source = assume_role_source(session, Clock(), session_name="dev", duration_seconds=900)
    first = source.fetch()
    assert (first.access_key_id, first.role_arn, first.account_id) == (
        "ASIAUNITTEST00000001",
        ROLE,
        "123456789012",
    )
    assert source.fetch().access_key_id == "ASIAUNITTEST00000002"  # no cache of its own
    assert source.fetches == 2
    assert session.clients == 1
    source.close()


def test_the_provider_caches_assume_role_and_refreshes_in_its_window(session: FakeSession) -> None:
    clock = Clock()
    session.stubber.add_response("assume_role", assumed(T0 + timedelta(minutes=15)))
    session.stubber.add_response(
        "assume_role", assumed(T0 + timedelta(minutes=26), "ASIAUNITTEST00000002")
    )
    source = assume_role_source(session, clock)
    provider = cached(source, clock)
    first = provider.get()
    assert first.expiration == T0 + timedelta(minutes=15)
    clock.now = T0 + timedelta(minutes=9, seconds=59)  # before the advisory point (L/3 = 5 min)
    assert provider.get() is first
    clock.now = T0 + timedelta(minutes=10, seconds=1)
    assert provider.get().access_key_id == "ASIAUNITTEST00000002"
    assert source.fetches == 2
    provider.close()


def test_a_failed_refresh_serves_the_cached_set_until_it_expires(
    session: FakeSession, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    session.stubber.add_response("assume_role", assumed(T0 + timedelta(minutes=15)))
    session.stubber.add_client_error("assume_role", "Throttling", "Rate exceeded", 400)
    session.stubber.add_client_error("assume_role", "AccessDenied", "not allowed", 403)
    provider = cached(assume_role_source(session, clock), clock)
    first = provider.get()
    clock.now = T0 + timedelta(minutes=14)  # mandatory window: the refresh fails
    assert provider.get() is first
    assert "using the cached set, which expires in" in caplog.text
    clock.now = T0 + timedelta(minutes=15)  # expired: never served
    with pytest.raises(CredentialsExpiredError) as caught:
        provider.get()
    error = caught.value.__cause__
    assert isinstance(error, CredentialSourceError)
    assert isinstance(error, ConfigError)
    assert (error.operation, error.code) == ("AssumeRole", "AccessDenied")
    assert str(error.message) == "STS AssumeRole failed: AccessDenied: not allowed (HTTP 403)"
    assert error.hint is not None
    assert "trust policy" in error.hint


def test_a_set_already_expired_is_never_returned(session: FakeSession) -> None:
    session.stubber.add_response("assume_role", assumed(T0 - timedelta(seconds=1)))
    with pytest.raises(CredentialSourceError, match="already expired"):
        assume_role_source(session, Clock()).fetch()


def test_errors_outside_error_are_read_too(session: FakeSession) -> None:
    # SeaweedFS answers some STS errors as S3 XML: botocore leaves Code/Message at the top level.
    from botocore.exceptions import ClientError

    source = assume_role_source(session, Clock())
    response: Any = {
        "Code": "AccessDenied",
        "Message": "Access Denied.",
        "ResponseMetadata": {"HTTPStatusCode": 403},
    }

    def refused(now: datetime) -> Any:
        raise ClientError(response, "AssumeRole")

    source._fetch = refused  # type: ignore[method-assign]
    with pytest.raises(CredentialSourceError) as caught:
        source()
    assert caught.value.message == "STS AssumeRole failed: AccessDenied: Access Denied. (HTTP 403)"


def test_only_one_caller_refreshes_while_the_set_is_usable(session: FakeSession) -> None:
    clock = Clock()
    session.stubber.add_response("assume_role", assumed(T0 + timedelta(minutes=15)))
    session.stubber.add_response(
        "assume_role", assumed(T0 + timedelta(minutes=30), "ASIAUNITTEST00000002")
    )
    source = assume_role_source(session, clock)
    provider = cached(source, clock)
    first = provider.get()
    clock.now = T0 + timedelta(minutes=11)  # advisory window: one caller refreshes
    inside, release = threading.Event(), threading.Event()
    fetch = source._fetch

    def slow_fetch(now: datetime) -> Any:
        inside.set()
        release.wait(5)
        return fetch(now)

    source._fetch = slow_fetch  # type: ignore[method-assign]
    refresher = threading.Thread(target=provider.refresh)
    refresher.start()
    assert inside.wait(5)
    assert provider.get() is first  # not blocked behind the refresh
    release.set()
    refresher.join(5)
    assert provider.get().access_key_id == "ASIAUNITTEST00000002"


def test_session_source_turns_long_term_keys_into_session_credentials(
    sessions: Callable[..., FakeSession],
) -> None:
    from botocore.credentials import Credentials as BotoCredentials

    fake = sessions(BotoCredentials("AKIAUNITTEST00000000", "long-term-secret", method="env"))
    fake.stubber.add_response(
        "get_caller_identity",
        {"UserId": "AIDA1", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/me"},
    )
    fake.stubber.add_response(
        "get_session_token",
        assumed(T0 + timedelta(hours=12)),
        expected_params={"DurationSeconds": 3600},
    )
    source = SessionCredentialsSource(fake, duration_seconds=3600, clock=Clock())  # type: ignore[arg-type]
    served = source()
    assert (served.access_key_id, served.token) == (
        "ASIAUNITTEST00000001",
        "token-ASIAUNITTEST00000001",
    )
    assert (served.role_arn, served.account_id) == (None, "123456789012")
    assert source.method == "env"
    fake.stubber.assert_no_pending_responses()
    source.close()


def test_session_source_names_the_alternatives_when_get_session_token_is_refused(
    sessions: Callable[..., FakeSession],
) -> None:
    from botocore.credentials import Credentials as BotoCredentials

    fake = sessions(BotoCredentials("AKIAUNITTEST00000000", "long-term-secret"))
    fake.stubber.add_response(
        "get_caller_identity",
        {"UserId": "AIDA1", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/me"},
    )
    fake.stubber.add_client_error(
        "get_session_token", "AccessDenied", "IAM write operations are disabled", 403
    )
    with pytest.raises(CredentialSourceError) as caught:
        SessionCredentialsSource(fake, clock=Clock()).fetch()  # type: ignore[arg-type]
    assert caught.value.operation == "GetSessionToken"
    assert caught.value.hint is not None
    assert "--role-arn" in caught.value.hint
    assert "long-term-secret" not in str(caught.value)


def test_session_source_passes_temporary_credentials_through(
    sessions: Callable[..., FakeSession],
) -> None:
    from botocore.credentials import RefreshableCredentials

    expiry = T0 + timedelta(hours=2)
    refreshable = RefreshableCredentials(
        "ASIAPASSTHROUGH00001",
        "temporary-secret",
        "temporary-token",
        expiry,
        refresh_using=lambda: pytest.fail("refreshed early"),
        method="sso",
        time_fetcher=lambda: T0,
    )
    fake = sessions(refreshable)
    fake.stubber.add_response(
        "get_caller_identity",
        {
            "UserId": "AROA1:me",
            "Account": "123456789012",
            "Arn": "arn:aws:sts::123456789012:assumed-role/Developer/me@example.com",
        },
    )
    served = SessionCredentialsSource(fake, clock=Clock()).fetch()  # type: ignore[arg-type]
    assert (served.access_key_id, served.token) == ("ASIAPASSTHROUGH00001", "temporary-token")
    assert served.expiration == expiry
    assert served.role_arn == "arn:aws:iam::123456789012:role/Developer"
    assert served.account_id == "123456789012"


def test_a_token_without_expiry_claims_one_hour_and_no_identity_is_tolerated(
    sessions: Callable[..., FakeSession],
) -> None:
    from botocore.credentials import Credentials as BotoCredentials

    fake = sessions(BotoCredentials("ASIASTATICTOKEN00001", "secret", "token"))
    fake.stubber.add_client_error("get_caller_identity", "InvalidAction", "not here", 400)
    served = SessionCredentialsSource(fake, clock=Clock()).fetch()  # type: ignore[arg-type]
    assert served.expiration == T0 + timedelta(hours=1)
    assert (served.role_arn, served.account_id) == (None, None)


def test_invalid_credentials_fail_get_caller_identity(sessions: Callable[..., FakeSession]) -> None:
    from botocore.credentials import Credentials as BotoCredentials

    fake = sessions(BotoCredentials("ASIASTATICTOKEN00001", "secret", "token"))
    fake.stubber.add_client_error("get_caller_identity", "ExpiredToken", "token expired", 403)
    with pytest.raises(CredentialSourceError) as caught:
        SessionCredentialsSource(fake, clock=Clock()).fetch()  # type: ignore[arg-type]
    assert caught.value.operation == "GetCallerIdentity"
    assert caught.value.hint is not None
    assert "invalid or expired" in caught.value.hint


def test_session_source_without_credentials(sessions: Callable[..., FakeSession]) -> None:
    with pytest.raises(CredentialSourceError, match="no AWS credentials found"):
        SessionCredentialsSource(sessions(None), clock=Clock()).fetch()  # type: ignore[arg-type]


# --- the warning for listening off loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_gets_no_warning(host: str) -> None:
    assert serve_local_command.exposure_warning(host, 51679) is None


@pytest.mark.parametrize(
    "host", ["169.254.170.2", "169.254.170.23", "fd00:ec2::23", "[fd00:ec2::23]"]
)
def test_an_agent_address_is_not_said_to_be_refused_by_clients(host: str) -> None:
    warning = serve_local_command.exposure_warning(host, 80)
    assert warning is not None
    assert warning.startswith(
        f"listening on {host}: whoever reaches port 80 gets these credentials"
    )
    assert "every SDK accepts FULL_URI over http" in warning
    assert "only" not in warning
    assert "TASKCREDS_ALLOWED_HOSTS" not in warning


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "172.18.0.2", "dev-box"])
def test_other_hosts_say_which_hosts_clients_accept(host: str) -> None:
    warning = serve_local_command.exposure_warning(host, 51679)
    assert warning is not None
    assert warning.startswith(f"listening on {host}: whoever reaches port 51679 gets these")
    assert (
        "clients accept FULL_URI over http only to loopback or 169.254.170.2, 169.254.170.23,"
        " fd00:ec2::23" in warning
    )
    assert "TASKCREDS_ALLOWED_HOSTS=<name>" in warning


def test_the_metadata_address_is_never_a_client_host() -> None:
    warning = serve_local_command.exposure_warning("169.254.169.254", 80)
    assert warning is not None
    assert "no client sends FULL_URI requests to 169.254.169.254" in warning
    assert "TASKCREDS_ALLOWED_HOSTS" not in warning


class ListeningOn:
    """What ``_announce`` reads of an AgentServer, for a server that is never started."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.credentials_id = "local-dev"
        self.relative_uri = "/v2/credentials/local-dev"
        self.base_url = f"http://{host}:{port}"


@pytest.mark.parametrize(
    ("host", "refused_claim"), [("169.254.170.2", False), ("10.0.0.7", True), ("127.0.0.1", None)]
)
def test_the_announcement_warns_as_the_host_deserves(host: str, refused_claim: bool | None) -> None:
    import io

    from taskcreds.cli._common import Output

    output = Output(json_mode=True, out=io.StringIO(), err=io.StringIO())
    args = argparse.Namespace(fake=True, role_arn=None, allow_host=[], compat_paths=False)
    serve_local_command._announce(
        ListeningOn(host, 80),  # type: ignore[arg-type]
        args,
        output,
        "fake credentials",
        None,
    )
    warnings = [line for line in output.err.getvalue().splitlines() if line.startswith("warning:")]
    document = json.loads(output.out.getvalue())
    assert document["environment"] == {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://{host}:80/v2/credentials/local-dev"
    }
    if refused_claim is None:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert ("accept FULL_URI over http only" in warnings[0]) is refused_claim
