"""Reading a botocore ``ClientError``: its code and message, wherever the service put them."""

from __future__ import annotations

from typing import Any

__all__ = ["error_code_and_message"]


def error_code_and_message(exc: BaseException) -> tuple[str | None, str | None]:
    """``(code, message)`` of an AWS error response, or ``None`` for what is missing.

    Some emulators (SeaweedFS's STS) answer with S3-style XML, which botocore's query parser leaves
    at the top level of ``response`` instead of under ``Error`` (where it writes "Unknown").
    """
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    nested = response.get("Error") or {}
    code = nested.get("Code")
    if not code or code == "Unknown":
        code = response.get("Code") or code
    message = nested.get("Message") or response.get("Message")
    return (str(code) if code else None, str(message) if message else None)
