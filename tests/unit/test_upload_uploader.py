"""The Uploader's own logic, without S3: its region, and what upload_file says about a bad path.

Nothing here sends a request: a client is made (botocore needs no network for that) and its
region read, and the path checks fail before any client exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from taskcreds import ConfigError, CredentialProvider, UploadError
from taskcreds.upload import Uploader

from .test_provider import FakeFetcher, FakeTime

ENVIRON = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"}


@pytest.fixture
def provider() -> CredentialProvider:
    fake_time = FakeTime()
    return CredentialProvider(
        ENVIRON,
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        fetcher=FakeFetcher(fake_time),  # type: ignore[arg-type]
    )


@pytest.fixture
def no_region_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither variable in the process, and no config file: boto3 alone would say us-east-1."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)


REGION_CASES = [
    ({"AWS_REGION": "eu-west-1"}, "eu-west-1", "AWS_REGION"),
    ({"AWS_DEFAULT_REGION": "eu-west-2"}, "eu-west-2", "AWS_DEFAULT_REGION"),
    ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}, "eu-west-1", "AWS_REGION"),
]


@pytest.mark.usefixtures("no_region_anywhere")
@pytest.mark.parametrize(("environ", "expected", "source"), REGION_CASES)
@pytest.mark.parametrize("overwrite", [True, False])
def test_region_from_each_variable_alone(
    provider: CredentialProvider,
    environ: dict[str, str],
    expected: str,
    source: str,
    overwrite: bool,
) -> None:
    with Uploader("b", provider=provider, environ=environ) as uploader:
        assert (uploader.region_name, uploader.region_source) == (expected, source)
        assert uploader._client(overwrite=overwrite).meta.region_name == expected


@pytest.mark.usefixtures("no_region_anywhere")
@pytest.mark.parametrize(("environ", "expected", "source"), REGION_CASES)
def test_region_from_the_process_environment(
    provider: CredentialProvider,
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    expected: str,
    source: str,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with Uploader("b", provider=provider) as uploader:  # environ=None: os.environ
        assert uploader._client(overwrite=True).meta.region_name == expected


@pytest.mark.usefixtures("no_region_anywhere")
@pytest.mark.parametrize(("environ", "expected", "source"), REGION_CASES)
def test_region_with_the_callers_session(
    environ: dict[str, str], expected: str, source: str
) -> None:
    # A plain boto3 session reads neither AWS_REGION nor (here) anything: us-east-1 before.
    session = boto3.Session(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
    with Uploader("b", session=session, environ=environ) as uploader:
        assert uploader._client(overwrite=True).meta.region_name == expected


@pytest.mark.usefixtures("no_region_anywhere")
def test_region_argument_beats_the_variables(provider: CredentialProvider) -> None:
    environ = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}
    with Uploader("b", provider=provider, environ=environ, region_name="ap-south-1") as uploader:
        assert uploader.region_source == "region_name"
        assert uploader._client(overwrite=True).meta.region_name == "ap-south-1"


@pytest.mark.usefixtures("no_region_anywhere")
def test_no_region_is_left_to_boto3(provider: CredentialProvider) -> None:
    with Uploader("b", provider=provider, environ={}) as uploader:
        assert (uploader.region_name, uploader.region_source) == (None, None)
        assert uploader._client(overwrite=True).meta.region_name == "us-east-1"


def test_malformed_region_is_a_config_error_naming_the_variable(
    provider: CredentialProvider,
) -> None:
    with pytest.raises(ConfigError, match="AWS_REGION='us east 1' is not a region name"):
        Uploader("b", provider=provider, environ={"AWS_REGION": "us east 1"})


# -- upload_file on something that is not a file -------------------------------------------------


def test_upload_file_missing_says_it_does_not_exist(
    provider: CredentialProvider, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.csv"
    with (
        Uploader("b", provider=provider, environ={}) as uploader,
        pytest.raises(UploadError) as info,
    ):
        uploader.upload_file(missing)
    assert info.value.message == f"{missing} does not exist"
    assert "is not a file" not in str(info.value)
    assert info.value.hint


def test_upload_file_dangling_symlink_does_not_exist(
    provider: CredentialProvider, tmp_path: Path
) -> None:
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "gone.csv")
    with (
        Uploader("b", provider=provider, environ={}) as uploader,
        pytest.raises(UploadError, match="does not exist"),
    ):
        uploader.upload_file(link)


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_upload_file_on_a_directory_or_fifo_is_not_a_file(
    provider: CredentialProvider, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "thing"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    with (
        Uploader("b", provider=provider, environ={}) as uploader,
        pytest.raises(UploadError) as info,
    ):
        uploader.upload_file(path)
    assert info.value.message == f"{path} is not a file"


def test_upload_dir_missing_says_it_does_not_exist(
    provider: CredentialProvider, tmp_path: Path
) -> None:
    with Uploader("b", provider=provider, environ={}) as uploader:
        with pytest.raises(UploadError, match="does not exist"):
            uploader.upload_dir(tmp_path / "gone")
        (tmp_path / "file").write_text("x")
        with pytest.raises(UploadError, match="is not a directory"):
            uploader.upload_dir(tmp_path / "file")


def test_an_unknown_option_fails_before_any_request(provider: CredentialProvider) -> None:
    with (
        Uploader("app-a", "p/", provider=provider, environ=ENVIRON) as uploader,
        pytest.raises(TypeError, match=r"unknown upload option\(s\): colour"),
    ):
        uploader.upload_bytes(b"x", "k", overwrite=False, colour="red")  # type: ignore[call-arg]
