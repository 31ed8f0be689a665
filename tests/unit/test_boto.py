"""``taskcreds.session()``: the provider is the only credential link, and one region resolution."""

from __future__ import annotations

import logging

import pytest

import taskcreds
from taskcreds import CredentialProvider, Credentials

from .test_provider import FakeFetcher, FakeTime

ENVIRON = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"}


@pytest.fixture
def provider() -> CredentialProvider:
    fake_time = FakeTime()
    return CredentialProvider(
        ENVIRON,
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        fetcher=FakeFetcher(fake_time),
    )


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"AWS_REGION": "eu-west-1"}, "eu-west-1"),
        ({"AWS_DEFAULT_REGION": "eu-west-2"}, "eu-west-2"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}, "eu-west-1"),
    ],
)
def test_region_from_each_variable_alone(
    provider: CredentialProvider,
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    session = taskcreds.session(provider=provider)
    assert session.region_name == expected
    assert session.client("s3").meta.region_name == expected


def test_argument_beats_the_variables(provider: CredentialProvider) -> None:
    from taskcreds.boto import session

    aws = session(provider=provider, region_name="ap-south-1", environ={"AWS_REGION": "eu-west-1"})
    assert aws.region_name == "ap-south-1"


def test_malformed_region_is_a_config_error(provider: CredentialProvider) -> None:
    from taskcreds.boto import session

    with pytest.raises(taskcreds.ConfigError, match="not a region name"):
        session(provider=provider, environ={"AWS_REGION": "us east 1"})


def test_signs_with_the_provider_and_nothing_else(provider: CredentialProvider) -> None:
    from taskcreds.boto import METHOD, session

    aws = session(
        provider=provider,
        region_name="eu-west-1",
        environ={"AWS_ACCESS_KEY_ID": "AKIASTATICSTATIC", "AWS_SECRET_ACCESS_KEY": "x"},
    )
    frozen = aws.get_credentials()
    assert frozen is not None
    assert frozen.method == METHOD
    expected: Credentials = provider.get()
    assert frozen.get_frozen_credentials().access_key == expected.access_key_id
    assert "secret" not in repr(frozen)


def test_static_keys_are_ignored_with_a_warning(
    provider: CredentialProvider, caplog: pytest.LogCaptureFixture
) -> None:
    from taskcreds.boto import session

    with caplog.at_level(logging.WARNING, logger="taskcreds"):
        session(provider=provider, region_name="eu-west-1", environ={"AWS_ACCESS_KEY_ID": "AKIA1"})
    assert "AWS_ACCESS_KEY_ID is set but ignored" in caplog.text
    assert "AKIA1" not in caplog.text


def test_credentials_are_read_only(provider: CredentialProvider) -> None:
    from taskcreds.boto import session

    creds = session(provider=provider, region_name="eu-west-1").get_credentials()
    assert creds is not None
    with pytest.raises(AttributeError):
        creds.access_key = "AKIA-OTHER"


def test_static_keys_warning_with_a_provider_that_is_not_an_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import datetime, timedelta, timezone

    from taskcreds.boto import session
    from taskcreds.sources import StaticSource

    creds = Credentials(
        "ASIASTATIC0000000", "s", "t", datetime.now(timezone.utc) + timedelta(hours=1)
    )
    provider = CredentialProvider.from_source(StaticSource(creds))
    with caplog.at_level(logging.WARNING, logger="taskcreds"):
        aws = session(
            provider=provider, region_name="eu-west-1", environ={"AWS_ACCESS_KEY_ID": "AKIA1"}
        )
    assert "StaticSource" in caplog.text
    frozen = aws.get_credentials()
    assert frozen is not None
    assert frozen.get_frozen_credentials().access_key == "ASIASTATIC0000000"
