"""The CRT engine's parts that need no server (taskcreds/upload/_crt.py, _crt_multipart.py):
which arguments it takes, the headers it sends, the answers it reads, where it sends a request,
and how a multipart upload's parts are cut and read."""

from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

from taskcreds.upload import _crt, _crt_multipart
from taskcreds.upload._errors import translate

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("extra", "sendable"),
    [
        ({"ChecksumAlgorithm": "CRC32C", "ContentType": "text/plain"}, True),
        ({"ChecksumAlgorithm": "CRC32C", "Metadata": {"taskcreds-sha256": "ab" * 32}}, True),
        ({"ChecksumAlgorithm": "CRC32C", "Metadata": {"name": "café"}}, False),  # not ASCII
        ({"ChecksumAlgorithm": "CRC32C", "Metadata": {"x": "a\r\nInjected: 1"}}, False),
        ({"ChecksumAlgorithm": "CRC32C", "ACL": "public-read"}, False),  # not this path's
    ],
)
def test_headers_are_sendable(extra: dict[str, object], sendable: bool) -> None:
    assert _crt.headers_are_sendable(extra) is sendable


def test_headers_carry_every_option_and_the_checksum() -> None:
    extra = {
        "ChecksumAlgorithm": "CRC32C",
        "ContentType": "text/csv",
        "Metadata": {"owner": "a"},
        "Tagging": "team=data",
        "StorageClass": "STANDARD_IA",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/app",
    }
    headers = dict(_crt.header_list(extra, "CRC32C", "AAAAAA==", 5))
    assert headers == {
        "Content-Length": "5",
        "Content-Type": "text/csv",
        "x-amz-tagging": "team=data",
        "x-amz-storage-class": "STANDARD_IA",
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": "alias/app",
        "x-amz-meta-owner": "a",
        "x-amz-checksum-crc32c": "AAAAAA==",
    }


def test_an_answer_is_parsed_as_botocore_would() -> None:
    parsed = _crt._parsed(
        {"etag": '"abc"', "x-amz-version-id": "v1", "x-amz-checksum-crc32c": "q==", "date": "x"}
    )
    assert parsed == {"ETag": '"abc"', "VersionId": "v1", "ChecksumCRC32C": "q=="}


def test_an_error_answer_is_a_client_error_the_error_table_reads() -> None:
    body = (
        b"<?xml version='1.0'?><Error><Code>AccessDenied</Code>"
        b"<Message>not authorized to perform: s3:PutObject</Message></Error>"
    )
    error = _crt._client_error(_crt._Answer(status=403, error_body=body))
    assert isinstance(error, ClientError)
    assert error.response["Error"] == {
        "Code": "AccessDenied",
        "Message": "not authorized to perform: s3:PutObject",
    }
    translated = translate(error, bucket="b", key="p/k", prefix="p/")
    assert "s3:PutObject" in str(translated)


@pytest.mark.parametrize("body", [b"", b"<not xml", b"\x00\xff"])
def test_an_error_answer_without_xml_keeps_its_status(body: bytes) -> None:
    error = _crt._client_error(_crt._Answer(status=503, error_body=body))
    assert error is not None
    assert error.response["Error"]["Code"] == "503"


def test_an_answer_the_crt_retried_out_is_the_client_error_of_s3s_code() -> None:
    class CrtError(Exception):
        name = "AWS_ERROR_S3_SLOW_DOWN"

    sent = _crt.Sent(operation="UploadPart", deadline=1.0)
    sent.answer.error = CrtError()
    with pytest.raises(ClientError) as raised:
        sent.result()
    assert raised.value.response["Error"]["Code"] == "SlowDown"
    assert raised.value.operation_name == "UploadPart"
    assert translate(raised.value, bucket="b", key="k").__class__.__name__ == "UploadError"


def test_no_answer_is_no_client_error() -> None:
    assert _crt._client_error(_crt._Answer(status=None)) is None


def test_requests_go_path_style_or_virtual_hosted() -> None:
    path_style = _crt.CrtPut.__new__(_crt.CrtPut)
    path_style._host, path_style._base_path, path_style._path_style = "127.0.0.1:8333", "", True
    assert path_style._where("app-a", "p/a b+c.txt") == ("127.0.0.1:8333", "/app-a/p/a%20b%2Bc.txt")
    virtual = _crt.CrtPut.__new__(_crt.CrtPut)
    virtual._host, virtual._base_path, virtual._path_style = "s3.eu-west-1.amazonaws.com", "", False
    assert virtual._where("app-a", "k") == ("app-a.s3.eu-west-1.amazonaws.com", "/k")
    # A dotted bucket would not match the wildcard certificate: path style.
    assert virtual._where("my.bucket", "k") == ("s3.eu-west-1.amazonaws.com", "/my.bucket/k")


def test_a_byte_budget_holds_at_most_its_limit_but_never_blocks_a_lone_holder() -> None:
    import threading

    from taskcreds.upload._transfer import ByteBudget

    budget = ByteBudget(10)
    with budget.hold(25):  # alone: may go ahead, whatever its size
        pass
    entered = threading.Event()
    with budget.hold(6):

        def second() -> None:
            with budget.hold(6):
                entered.set()

        waiter = threading.Thread(target=second)
        waiter.start()
        assert not entered.wait(0.2)  # 6 + 6 > 10: it waits for the first to finish
    assert entered.wait(5)
    waiter.join(5)


def test_a_part_window_reads_its_bytes_only_and_again_after_a_seek(tmp_path: Any) -> None:
    data = bytes(range(256)) * 40
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        for source in (
            _crt_multipart.PartSource.of_file(descriptor, len(data)),
            _crt_multipart.PartSource.of_buffer(memoryview(data)),
        ):
            window = source.window(1000, 3000)
            assert window.read(10) == data[1000:1010]
            assert window.read() == data[1010:4000]
            assert window.read() == b""
            window.seek(0)
            into = bytearray(5000)
            assert window.readinto(into) == 3000
            assert bytes(into[:3000]) == data[1000:4000]
            assert window.seek(-100, os.SEEK_END) == 2900
            assert window.tell() == 2900
    finally:
        os.close(descriptor)


def test_a_part_window_past_the_end_of_a_shrunk_file_is_an_error(tmp_path: Any) -> None:
    path = tmp_path / "shrunk.bin"
    path.write_bytes(b"x" * 100)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        window = _crt_multipart.PartSource.of_file(descriptor, 1000).window(500, 500)
        with pytest.raises(OSError, match="shrank"):
            window.read()
    finally:
        os.close(descriptor)


@pytest.mark.parametrize(
    ("size", "part_size", "expected"),
    [
        (100 * MiB, 8 * MiB, 8 * MiB),
        (10_000 * 8 * MiB, 8 * MiB, 8 * MiB),
        (10_000 * 8 * MiB + 1, 8 * MiB, 16 * MiB),
        (5 * 1024**4, 8 * MiB, 1024 * MiB),
    ],
)
def test_the_part_size_grows_to_fit_10000_parts(size: int, part_size: int, expected: int) -> None:
    chosen = _crt_multipart.part_size_for(size, part_size)
    assert chosen == expected
    assert -(-size // chosen) <= _crt_multipart.MAX_PARTS
