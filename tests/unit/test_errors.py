"""The error tree: every error serialises itself, with every attribute it carries."""

from __future__ import annotations

import json

import pytest

import taskcreds.errors as errors
from taskcreds.errors import (
    AccessDeniedError,
    EndpointHTTPError,
    TaskCredsError,
    UnsupportedHostError,
)


def test_access_denied_keeps_bucket_key_and_action() -> None:
    error = AccessDeniedError(
        "access denied", bucket="app-b", key="x/y", action="s3:PutObject", hint="grant it"
    )
    assert error.to_dict() == {
        "type": "AccessDeniedError",
        "message": "access denied",
        "hint": "grant it",
        "retryable": False,
        "bucket": "app-b",
        "key": "x/y",
        "action": "s3:PutObject",
    }


def test_http_error_keeps_status_code_detail_and_its_own_retryable() -> None:
    error = EndpointHTTPError(
        "HTTP 503", url="http://127.0.0.1/x", status=503, code="C", detail="d", retryable=True
    )
    document = error.to_dict()
    assert (document["status"], document["code"], document["retryable"]) == (503, "C", True)
    assert "hint" in document
    assert document["hint"] is None


def test_tuples_become_lists_and_unset_attributes_are_left_out() -> None:
    error = UnsupportedHostError("no", host="h", allowed=("loopback", "h2"))
    document = error.to_dict()
    assert document["allowed"] == ["loopback", "h2"]
    assert json.loads(json.dumps(document)) == document


def _every_error_class() -> list[type[TaskCredsError]]:
    found = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, TaskCredsError)
    ]
    assert len(found) > 15
    return found


@pytest.mark.parametrize("cls", _every_error_class(), ids=lambda cls: cls.__name__)
def test_every_error_is_drawn_in_the_tree_and_serialises(cls: type[TaskCredsError]) -> None:
    assert cls.__name__ in (errors.__doc__ or "")
    error = cls.__new__(cls)
    TaskCredsError.__init__(error, "a message", hint="a hint")
    document = error.to_dict()
    assert document["type"] == cls.__name__
    json.dumps(document)
