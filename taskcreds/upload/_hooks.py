"""botocore event hooks: what s3transfer cannot be asked for, added at the request level.

- :class:`NoOverwrite` adds ``If-None-Match: *`` to PutObject and CompleteMultipartUpload
  (s3transfer's ``upload_file`` does not accept ``IfNoneMatch``, boto3#4366).
- :class:`RefreshOnExpired` forces one credential refresh when S3 says ``ExpiredToken`` or
  ``InvalidAccessKeyId`` and retries that request (the same part of the same upload), once.
- :class:`Ledger` records the responses s3transfer does not return (ETag, version, checksum) and
  every multipart upload id, so an upload that failed can be checked for leftovers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from taskcreds.errors import TaskCredsError
from taskcreds.provider import CredentialProvider

__all__ = ["Ledger", "NoOverwrite", "RefreshOnExpired"]

logger = logging.getLogger("taskcreds")

_EXPIRED_CODES = frozenset({"ExpiredToken", "InvalidAccessKeyId", "TokenRefreshRequired"})
_CONTEXT_KEY = "taskcreds_key"
_CONTEXT_REFRESHED = "taskcreds_refreshed"
_CONTEXT_UPLOAD_ID = "taskcreds_upload_id"


class NoOverwrite:
    """Makes a client's writes fail with 412 instead of replacing an existing object."""

    def register(self, events: Any) -> None:
        for operation in ("PutObject", "CompleteMultipartUpload"):
            events.register(f"before-parameter-build.s3.{operation}", self._add_condition)

    @staticmethod
    def _add_condition(params: dict[str, Any], **kwargs: Any) -> None:
        params["IfNoneMatch"] = "*"


class RefreshOnExpired:
    """One forced refresh and one immediate retry when S3 rejects the credentials as expired.

    Runs before botocore's own retry handler, which does not retry these codes.
    """

    #: A refresh forced less than this long ago is not forced again (the request is retried with
    #: the set it installed): when S3 keeps refusing, the agent is asked at most once per period.
    COOLDOWN_SECONDS = 5.0

    def __init__(self, provider: CredentialProvider) -> None:
        self._provider = provider
        self._lock = threading.Lock()
        self._last_forced = -math.inf

    def register(self, events: Any) -> None:
        events.register_first("needs-retry.s3", self._needs_retry)

    def _needs_retry(
        self, response: Any = None, request_dict: Any = None, **kwargs: Any
    ) -> float | None:
        if response is None or request_dict is None:
            return None
        code = response[1].get("Error", {}).get("Code") if isinstance(response[1], dict) else None
        context = request_dict.get("context", {})
        if code not in _EXPIRED_CODES or context.get(_CONTEXT_REFRESHED):
            return None
        context[_CONTEXT_REFRESHED] = True
        # Held across the refresh: parts rejected meanwhile wait for the new set, then retry.
        with self._lock:
            now = time.monotonic()
            if now - self._last_forced < self.COOLDOWN_SECONDS:
                return 0.0  # a refresh was just forced: retry once with the set it installed
            self._last_forced = now
            try:
                fresh = self._provider.refresh()
            except TaskCredsError as exc:
                logger.warning("S3 said %s and refreshing credentials failed: %s", code, exc)
                return None
        if fresh.expiration <= datetime.now(timezone.utc):
            return None
        logger.info("S3 said %s; refreshed credentials and retrying the request", code)
        return 0.0  # retry now: the request is signed again with the new set


class Ledger:
    """Responses and multipart upload ids, per key, for one client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._responses: dict[str, dict[str, Any]] = {}
        self._open_uploads: defaultdict[str, set[str]] = defaultdict(set)
        self._multipart_keys: set[str] = set()

    def register(self, events: Any) -> None:
        events.register("before-parameter-build.s3", self._remember_key)
        for operation in ("PutObject", "CompleteMultipartUpload"):
            events.register(f"after-call.s3.{operation}", self._record_response)
        events.register("after-call.s3.CreateMultipartUpload", self._record_started)
        events.register("after-call.s3.AbortMultipartUpload", self._record_aborted)

    def take_response(self, key: str) -> dict[str, Any]:
        with self._lock:
            return self._responses.pop(key, {})

    def was_multipart(self, key: str) -> bool:
        with self._lock:
            return key in self._multipart_keys

    def open_uploads(self, key: str) -> set[str]:
        """Upload ids started for ``key`` and neither completed nor aborted."""
        with self._lock:
            return set(self._open_uploads.get(key, ()))

    def forget(self, key: str) -> None:
        with self._lock:
            self._open_uploads.pop(key, None)
            self._multipart_keys.discard(key)
            self._responses.pop(key, None)

    @staticmethod
    def _remember_key(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context[_CONTEXT_KEY] = params.get("Key")
        context[_CONTEXT_UPLOAD_ID] = params.get("UploadId")

    def _record_response(
        self, parsed: dict[str, Any], context: dict[str, Any], model: Any = None, **kwargs: Any
    ) -> None:
        key = context.get(_CONTEXT_KEY)
        if key is None or "Error" in parsed:
            return
        with self._lock:
            self._responses[key] = parsed
            if getattr(model, "name", "") == "CompleteMultipartUpload":
                self._open_uploads[key].discard(context.get(_CONTEXT_UPLOAD_ID) or "")

    def _record_started(
        self, parsed: dict[str, Any], context: dict[str, Any], **kwargs: Any
    ) -> None:
        key = context.get(_CONTEXT_KEY)
        upload_id = parsed.get("UploadId")
        if key is None or not upload_id:
            return
        with self._lock:
            self._open_uploads[key].add(upload_id)
            self._multipart_keys.add(key)

    def _record_aborted(
        self, parsed: dict[str, Any], context: dict[str, Any], **kwargs: Any
    ) -> None:
        key = context.get(_CONTEXT_KEY)
        if key is None or "Error" in parsed:
            return
        with self._lock:
            self._open_uploads[key].discard(context.get(_CONTEXT_UPLOAD_ID) or "")
