"""The CRT engine for small objects (taskcreds/upload/_crt.py) against SeaweedFS with AppA's real
STS credentials: that it is the path taken, what it stores, where its credentials come from, and
its errors. Every other upload test runs through it too (it is the default for such objects)."""

from __future__ import annotations

import contextlib
import gc
from typing import Any

import pytest

import taskcreds
from taskcreds import AccessDeniedError, ConfigError
from taskcreds.errors import EndpointUnreachableError
from taskcreds.upload import Uploader
from taskcreds.upload._crt import Sent
from taskcreds_demo.seaweed import SeaweedFS

from .test_upload import uploader_for


def no_botocore_put(uploader: Uploader) -> None:
    """Make botocore's PutObject fail, so that only the CRT can store an object."""

    def refuse(**kwargs: Any) -> None:
        raise AssertionError("botocore's put_object was used for a small object")

    uploader._client(overwrite=True).put_object = refuse  # type: ignore[method-assign]


def head(seaweed: SeaweedFS, key: str) -> dict[str, Any]:
    with contextlib.closing(seaweed.admin_client("s3")) as s3:
        answer: dict[str, Any] = dict(
            s3.head_object(Bucket="app-a", Key=key, ChecksumMode="ENABLED")
        )
        tags = s3.get_object_tagging(Bucket="app-a", Key=key)["TagSet"]
        body = s3.get_object(Bucket="app-a", Key=key)["Body"].read()
    answer["Tags"] = {tag["Key"]: tag["Value"] for tag in tags}
    answer["Body"] = body
    return answer


def test_a_small_object_goes_through_the_crt_with_its_options(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    data = b"through the CRT " * 64
    with uploader_for(seaweed, provider) as uploader:
        no_botocore_put(uploader)
        result = uploader.upload_bytes(
            data,
            "crt/object.csv",
            metadata={"owner": "app-a"},
            tags={"team": "data"},
            content_type="text/csv",
        )
        assert uploader._clients._crt is not None
    stored = head(seaweed, result.key)
    assert stored["Body"] == data
    assert stored["ContentType"] == "text/csv"
    assert stored["Metadata"] == {"owner": "app-a"}
    assert stored["Tags"] == {"team": "data"}
    assert result.checksum_algorithm == "CRC32C"
    assert result.checksum == stored["ChecksumCRC32C"]
    assert result.etag == stored["ETag"]
    assert result.size == len(data)
    assert not result.multipart


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256", "CRC64NVME"])
def test_each_checksum_is_sent_and_stored(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, algorithm: str
) -> None:
    with uploader_for(seaweed, provider, checksum_algorithm=algorithm) as uploader:
        no_botocore_put(uploader)
        result = uploader.upload_bytes(b"x" * 5000, f"sum-{algorithm}.bin")
    assert result.checksum == head(seaweed, result.key)[f"Checksum{algorithm}"]


def test_upload_dir_files_go_through_the_crt(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Any
) -> None:
    for index in range(20):
        (tmp_path / f"d{index % 3}").mkdir(exist_ok=True)
        (tmp_path / f"d{index % 3}" / f"f{index}.txt").write_bytes(b"%d" % index * 100)
    with uploader_for(seaweed, provider) as uploader:
        no_botocore_put(uploader)
        outcome = uploader.upload_dir(tmp_path)
    assert not outcome.failed
    assert len(outcome.uploaded) == 20


def test_an_endpoint_and_region_given_need_no_botocore_client(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Any
) -> None:
    # Making botocore's S3 client costs a fifth of a second (its service model): where the
    # caller named the endpoint and the region, the CRT knows where to send without it.
    for index in range(5):
        (tmp_path / f"f{index}.txt").write_bytes(b"x" * index)
    with uploader_for(seaweed, provider) as uploader:
        uploader.upload_bytes(b"small", "no-client/one.txt")
        outcome = uploader.upload_dir(tmp_path, skip_unchanged=False)  # no HEAD of each key
        assert len(outcome.uploaded) == 5
        assert uploader._clients._clients == {}
    assert head(seaweed, f"{uploader.prefix}no-client/one.txt")["Body"] == b"small"


def test_without_a_region_botocore_resolves_where_the_crt_sends(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    with Uploader(
        "app-a", "no-region/", provider=provider, endpoint_url=seaweed.s3_endpoint, environ={}
    ) as uploader:
        result = uploader.upload_bytes(b"resolved", "one.txt")
        assert uploader._clients._crt is not None
        assert uploader._clients._clients  # botocore's client said where and which region
    assert head(seaweed, result.key)["Body"] == b"resolved"


def requests_alive() -> int:
    """How many CRT requests are still held after a full collection."""
    gc.collect()
    return sum(isinstance(thing, Sent) for thing in gc.get_objects())


def test_upload_dir_keeps_no_request_once_it_returns(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Any
) -> None:
    # Each request's callback is held by the CRT until the request is freed: a callback that
    # led back to the request would make a cycle the collector cannot see, and every file's
    # body and request objects would stay in memory for good.
    for index in range(50):
        (tmp_path / f"f{index}.bin").write_bytes(b"%d" % index * 500)
    before = requests_alive()
    with uploader_for(seaweed, provider) as uploader:
        no_botocore_put(uploader)
        outcome = uploader.upload_dir(tmp_path)
        assert len(outcome.uploaded) == 50
        assert requests_alive() == before


def test_engine_botocore_sends_through_botocore(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    with uploader_for(seaweed, provider, engine="botocore") as uploader:
        result = uploader.upload_bytes(b"via botocore", "boto.txt")
        assert uploader._clients._crt is None
    assert head(seaweed, result.key)["Body"] == b"via botocore"


def test_an_unknown_engine_is_a_config_error(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    with pytest.raises(ConfigError, match="engine"):
        uploader_for(seaweed, provider, engine="obstore")


def test_no_overwrite_writes_keep_botocore(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    # Conditional writes need every attempt seen (the lost-answer check): never the CRT.
    with uploader_for(seaweed, provider) as uploader:
        result = uploader.upload_bytes(b"once", "once.txt", overwrite=False)
        assert uploader._clients._crt is None
    assert head(seaweed, result.key)["Body"] == b"once"


def test_the_crt_signs_with_the_providers_credentials_not_the_environment(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "wrong")
    with uploader_for(seaweed, provider) as uploader:
        no_botocore_put(uploader)
        result = uploader.upload_bytes(b"signed by the task role", "who.txt")
    assert head(seaweed, result.key)["Body"] == b"signed by the task role"


def test_no_credentials_is_the_providers_typed_error(seaweed: SeaweedFS) -> None:
    dead = taskcreds.CredentialProvider(
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/creds"}, timeout=1.0
    )
    with uploader_for(seaweed, dead) as uploader, pytest.raises(EndpointUnreachableError):
        uploader.upload_bytes(b"nothing", "nothing.txt")


def test_another_apps_bucket_is_access_denied_naming_the_action(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    with uploader_for(seaweed, provider, bucket="app-b") as uploader:
        no_botocore_put(uploader)
        with pytest.raises(AccessDeniedError) as denied:
            uploader.upload_bytes(b"not mine", "intrusion.txt")
    assert denied.value.action == "s3:PutObject"
    assert "s3://app-b/" in str(denied.value)


@pytest.mark.parametrize(
    "name",
    ["a b.txt", "2026-12-01T10:00:00+00:00.log", "x=1&y=(2),3;!~*'.bin", "café/naïve ünï.txt"],
)
def test_keys_that_need_encoding_are_signed_right(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, name: str
) -> None:
    # The path is percent-encoded once and signed as S3 signs it (not double-encoded).
    with uploader_for(seaweed, provider) as uploader:
        no_botocore_put(uploader)
        result = uploader.upload_bytes(name.encode(), name)
    assert head(seaweed, result.key)["Body"] == name.encode()


def test_a_single_put_above_the_crts_part_size_stays_one_request(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider
) -> None:
    data = bytes(range(256)) * (10 * 4096)  # 10 MiB, below a 16 MiB threshold
    with uploader_for(seaweed, provider, multipart_threshold=16 * 1024 * 1024) as uploader:
        no_botocore_put(uploader)
        result = uploader.upload_bytes(data, "ten.bin")
    stored = head(seaweed, result.key)
    assert stored["Body"] == data
    assert not result.multipart
    assert "-" not in str(stored["ETag"])  # not a multipart ETag
    assert result.checksum == stored["ChecksumCRC32C"]


def test_a_file_that_grew_since_it_was_measured_is_sent_whole_by_botocore(
    seaweed: SeaweedFS, provider: taskcreds.CredentialProvider, tmp_path: Any
) -> None:
    from taskcreds.upload import _transfer

    path = tmp_path / "growing.log"
    path.write_bytes(b"first line\n")
    with uploader_for(seaweed, provider) as uploader:
        size = path.stat().st_size
        with path.open("ab") as handle:
            handle.write(b"second line\n")  # grows after it was measured
        response = _transfer._put_small(
            uploader,
            str(path),
            uploader.key_for("growing.log"),
            size,
            extra_args={"ChecksumAlgorithm": "CRC32C"},
            overwrite=True,
        )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200  # botocore's answer
    assert head(seaweed, uploader.key_for("growing.log"))["Body"] == b"first line\nsecond line\n"
