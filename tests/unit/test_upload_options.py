"""UploadOptions: keyword arguments merged and checked, ExtraArgs built, and a module the CLI
imports without loading botocore."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taskcreds import ConfigError
from taskcreds.upload import CHECKSUM_ALGORITHMS, UploadOptions
from taskcreds.upload.options import SHA256_METADATA, checked_algorithm, resolve


def test_keywords_override_the_options_object() -> None:
    base = UploadOptions(content_type="text/csv", overwrite=False)
    merged = resolve(base, {"overwrite": True, "tags": {"a": "b"}})
    assert merged == UploadOptions(content_type="text/csv", overwrite=True, tags={"a": "b"})
    assert resolve(None, {}) == UploadOptions()
    assert resolve(base, {}) is base


def test_an_unknown_option_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match=r"unknown upload option\(s\): colour, size"):
        resolve(None, {"size": 1, "colour": "red"})


def test_options_are_frozen() -> None:
    with pytest.raises(AttributeError):
        UploadOptions().overwrite = False  # type: ignore[misc]


def test_extra_args_of_every_option() -> None:
    options = UploadOptions(
        content_type="text/plain",
        metadata={"m": "1"},
        tags={"team": "a b"},
        storage_class="STANDARD_IA",
        sse="aws:kms",
        kms_key_id="alias/k",
        checksum_algorithm="sha256",
    )
    assert options.extra_args("CRC32C") == {
        "ChecksumAlgorithm": "SHA256",
        "ContentType": "text/plain",
        "Metadata": {"m": "1"},
        "Tagging": "team=a+b",
        "StorageClass": "STANDARD_IA",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/k",
    }
    assert UploadOptions().extra_args("CRC32") == {"ChecksumAlgorithm": "CRC32"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (UploadOptions(sse="des"), "sse must be 'AES256' or 'aws:kms'"),
        (UploadOptions(kms_key_id="alias/k"), "kms_key_id needs sse='aws:kms'"),
        (UploadOptions(checksum_algorithm="md5"), "is not one of CRC32C"),
    ],
)
def test_bad_values_are_config_errors(options: UploadOptions, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        options.extra_args("CRC32C")


def test_content_type_is_guessed_only_when_not_given() -> None:
    assert UploadOptions().with_defaults(name="a.html").content_type == "text/html"
    assert UploadOptions().with_defaults(name="noext").content_type == "application/octet-stream"
    given = UploadOptions(content_type="text/x")
    assert given.with_defaults(name="a.html") is given


def test_checksum_algorithms_are_checked_case_blind() -> None:
    assert [checked_algorithm(name.lower()) for name in CHECKSUM_ALGORITHMS] == list(
        CHECKSUM_ALGORITHMS
    )
    assert SHA256_METADATA == "taskcreds-sha256"


def test_the_options_and_errors_modules_load_no_boto() -> None:
    code = (
        "import sys, taskcreds.upload.options, taskcreds.upload._errors, taskcreds.cli.upload\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('botocore', 'boto3', 's3transfer'))\n"
        "print(','.join(loaded))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == ""
