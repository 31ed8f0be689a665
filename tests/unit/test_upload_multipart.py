"""Multipart administration (``taskcreds.upload._multipart``) against a stub client."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.exceptions import ClientError

from taskcreds import AccessDeniedError, UploadError
from taskcreds.upload import IncompleteUpload
from taskcreds.upload._errors import translate
from taskcreds.upload._hooks import Ledger
from taskcreds.upload._multipart import abort_incomplete, clean_up_after_failure, list_incomplete

NOW = datetime.now(timezone.utc)


class StubClient:
    def __init__(self, uploads: list[dict[str, Any]], abort_code: str | None = None) -> None:
        self._uploads = uploads
        self._abort_code = abort_code
        self.aborted: list[tuple[str, str]] = []

    def get_paginator(self, name: str) -> StubClient:
        assert name == "list_multipart_uploads"
        return self

    def paginate(self, **params: Any) -> list[dict[str, Any]]:
        assert params == {"Bucket": "b", "Prefix": "p/"}
        return [{"Uploads": self._uploads}]

    def abort_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str) -> None:
        if self._abort_code:
            raise ClientError(
                {"Error": {"Code": self._abort_code, "Message": "no"}}, "AbortMultipartUpload"
            )
        self.aborted.append((Key, UploadId))


def translated(error: Exception, key: str | None) -> UploadError:
    return translate(error, bucket="b", key=key, prefix="p/")


def test_list_and_abort_only_the_old_ones() -> None:
    client = StubClient(
        [
            {"Key": "p/old", "UploadId": "1", "Initiated": NOW - timedelta(days=2)},
            {"Key": "p/new", "UploadId": "2", "Initiated": NOW},
        ]
    )
    old = list_incomplete(client, "b", "p/", timedelta(days=1), translated)  # type: ignore[arg-type]
    assert old == [IncompleteUpload("b", "p/old", "1", NOW - timedelta(days=2))]
    assert abort_incomplete(client, old, translated) == old  # type: ignore[arg-type]
    assert client.aborted == [("p/old", "1")]


def test_a_refused_abort_is_a_typed_error() -> None:
    client = StubClient([], abort_code="AccessDenied")
    upload = IncompleteUpload("b", "p/k", "1", NOW)
    with pytest.raises(AccessDeniedError, match="s3:AbortMultipartUpload"):
        abort_incomplete(client, [upload], translated)  # type: ignore[arg-type]


def test_clean_up_logs_an_upload_it_could_not_abort(caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger()
    ledger._record_started({"UploadId": "u1"}, {"taskcreds_key": "p/k"})
    client = StubClient([], abort_code="AccessDenied")
    with caplog.at_level(logging.ERROR, logger="taskcreds"):
        clean_up_after_failure(client, ledger, "b", "p/k")  # type: ignore[arg-type]
    assert "could not abort multipart upload u1 of s3://b/p/k" in caplog.text
    assert ledger.open_uploads("p/k") == set()


def test_clean_up_is_quiet_when_the_upload_is_gone(caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger()
    ledger._record_started({"UploadId": "u1"}, {"taskcreds_key": "p/k"})
    with caplog.at_level(logging.ERROR, logger="taskcreds"):
        clean_up_after_failure(StubClient([], "NoSuchUpload"), ledger, "b", "p/k")  # type: ignore[arg-type]
    assert caplog.text == ""
