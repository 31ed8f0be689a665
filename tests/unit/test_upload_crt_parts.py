"""The CRT engine's parts that need no server (taskcreds/upload/_crt.py): which arguments it
takes, the headers it sends, the answers it reads and where it sends a request."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from taskcreds.upload import _crt
from taskcreds.upload._errors import translate


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
    headers = dict(_crt._headers(extra, "CRC32C", "AAAAAA==", 5))
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
