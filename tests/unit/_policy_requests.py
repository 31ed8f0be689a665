"""Policy requests and ways to look into the generated documents, for the tests of taskcreds.policy."""

from __future__ import annotations

from typing import Any

from taskcreds.policy import PolicyRequest, generate

ACCOUNT = "123456789012"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
EKS: dict[str, Any] = {"platform": "eks", "account": ACCOUNT, "region": "us-east-1"}


def policy(**kwargs: Any) -> dict[str, Any]:
    request = PolicyRequest(**{"bucket": "app-a", "prefix": "uploads/", **kwargs})
    return generate(request).permissions_policy


def statements(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


def all_actions(document: dict[str, Any]) -> set[str]:
    return {a for s in document["Statement"] for a in s["Action"]}
