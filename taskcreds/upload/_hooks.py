"""botocore event hooks: what s3transfer cannot be asked for, added at the request level.

- :class:`NoOverwrite` adds ``If-None-Match: *`` to PutObject and CompleteMultipartUpload
  (s3transfer's ``upload_file`` does not accept ``IfNoneMatch``, boto3#4366); retries a 409
  ``ConditionalRequestConflict`` (a competing conditional write in flight) with backoff, as AWS
  says to; and notes when an attempt's outcome is unknown (its answer was lost), so that a 412 on
  the retry can be checked against the object S3 holds (see :class:`Ledger`).
- :class:`RefreshOnExpired` forces one credential refresh when S3 calls the credentials expired
  (``ExpiredToken``, ``InvalidToken``...: :func:`._errors.classify`) and retries that request
  (the same part of the same upload), once.
- :class:`Ledger` records the responses s3transfer does not return (ETag, version, checksum) and
  every multipart upload id, so an upload that failed can be checked for leftovers; and, for a
  no-overwrite write refused on a retry after an attempt whose answer was lost, what that write
  sent (:class:`Unconfirmed`), so the uploader can tell its own object from another writer's.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import tenacity

from taskcreds.errors import TaskCredsError
from taskcreds.provider import CredentialProvider
from taskcreds.upload._checksums import body_checksum
from taskcreds.upload._errors import classify
from taskcreds.upload._telemetry import UploadRecorder
from taskcreds.upload.events import (
    CredentialsRejectedEvent,
    MultipartAbortedEvent,
    RequestRetryEvent,
)

__all__ = ["Ledger", "NoOverwrite", "RefreshOnExpired", "RetryReporter", "Unconfirmed"]

logger = logging.getLogger("taskcreds")

_CONTEXT_KEY = "taskcreds_key"
_CONTEXT_REFRESHED = "taskcreds_refreshed"
_CONTEXT_UPLOAD_ID = "taskcreds_upload_id"
_CONTEXT_PARTS = "taskcreds_parts"
#: (algorithm, base64 value) of the checksum a no-overwrite PutObject sends.
_CONTEXT_CHECKSUM = "taskcreds_checksum"
#: Set when an attempt of this request may have been stored although its answer never came.
_CONTEXT_UNKNOWN_OUTCOME = "taskcreds_unknown_outcome"
_CONTEXT_CONFLICTS = "taskcreds_conflicts"

_WRITES = ("PutObject", "CompleteMultipartUpload")
#: Answers that say S3 refused the request before storing anything.
_NOT_STORED = ("throttled", "conflict")

#: 409 ConditionalRequestConflict: attempts per request (the first included), and the backoff.
CONFLICT_ATTEMPTS = 5
CONFLICT_BACKOFF_BASE = 0.2
CONFLICT_BACKOFF_CAP = 5.0


def _error_code(response: Any) -> str | None:
    if response is None or not isinstance(response[1], dict):
        return None
    code = response[1].get("Error", {}).get("Code")
    return str(code) if code is not None else None


def _status(response: Any) -> int:
    return int(getattr(response[0], "status_code", 0) or 0)


class NoOverwrite:
    """Makes a client's writes fail with 412 instead of replacing an existing object.

    - 409 ``ConditionalRequestConflict`` (another conditional write to the key is in flight) is
      retried, the same request re-signed, up to ``attempts`` attempts with tenacity's
      randomised exponential backoff; ``sleep`` is injectable. After the last one the 409 is
      raised: nothing is known to be stored, so it is not reported as "already exists".
    - A PutObject's checksum is computed before it is sent and sent in a header (so the value
      is known, whether botocore would have put it in a header or a trailer).
    - An attempt that ended without an answer, or with a 5xx that may follow a stored write, is
      marked in the request context: a 412 on a later attempt may be for this very write.
    """

    def __init__(
        self,
        *,
        attempts: int = CONFLICT_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
        wait: tenacity.wait.wait_base | None = None,
    ) -> None:
        self._retrying = tenacity.Retrying(
            wait=wait
            or tenacity.wait_random_exponential(
                multiplier=CONFLICT_BACKOFF_BASE, max=CONFLICT_BACKOFF_CAP
            ),
            stop=tenacity.stop_after_attempt(attempts),
            sleep=sleep,
        )

    def register(self, events: Any) -> None:
        for operation in _WRITES:
            events.register(f"before-parameter-build.s3.{operation}", self._add_condition)
            events.register_first(f"needs-retry.s3.{operation}", self._needs_retry)
        events.register("before-call.s3.PutObject", self._pin_checksum)

    @staticmethod
    def _add_condition(params: dict[str, Any], **kwargs: Any) -> None:
        params["IfNoneMatch"] = "*"

    @staticmethod
    def _pin_checksum(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        algorithm = context.get("checksum", {}).get("request_algorithm")
        if not isinstance(algorithm, dict):
            return
        name = str(algorithm["name"])
        upper = str(algorithm["algorithm"]).upper()
        headers = params.setdefault("headers", {})
        value = headers.get(name)
        if value is None:
            try:
                value = body_checksum(params.get("body"), upper)
            except KeyError:  # an algorithm this module does not know: botocore's own way
                return
            if value is None:
                return
            # botocore sends a header that is already set as it is (no trailer, no recompute).
            headers[name] = value
        context[_CONTEXT_CHECKSUM] = (upper, str(value))

    def _needs_retry(
        self,
        response: Any = None,
        caught_exception: BaseException | None = None,
        request_dict: Any = None,
        **kwargs: Any,
    ) -> float | None:
        if request_dict is None:
            return None
        context = request_dict.setdefault("context", {})
        code = _error_code(response)
        if caught_exception is not None or (
            response is not None and _status(response) >= 500 and classify(code) not in _NOT_STORED
        ):
            context[_CONTEXT_UNKNOWN_OUTCOME] = True  # botocore's retry decides; we only note
            return None
        if classify(code) != "conflict":
            return None
        state = tenacity.RetryCallState(self._retrying, None, (), {})
        state.attempt_number = context[_CONTEXT_CONFLICTS] = context.get(_CONTEXT_CONFLICTS, 0) + 1
        if self._retrying.stop(state):
            return None
        delay = float(self._retrying.wait(state))
        logger.info(
            "S3 said %s (a competing write to the key is in flight); retrying in %.2f s",
            code,
            delay,
        )
        self._retrying.sleep(delay)
        return 0.0  # slept already (the sleep is injectable): retry now, signed again


class RefreshOnExpired:
    """One forced refresh and one immediate retry when S3 rejects the credentials as expired.

    Runs before botocore's own retry handler, which does not retry these codes.
    """

    #: A refresh forced less than this long ago is not forced again (the request is retried with
    #: the set it installed): when S3 keeps refusing, the agent is asked at most once per period.
    COOLDOWN_SECONDS = 5.0

    def __init__(
        self, provider: CredentialProvider, recorder: UploadRecorder | None = None
    ) -> None:
        self._provider = provider
        self._recorder = recorder
        self._lock = threading.Lock()
        self._last_forced = -math.inf

    def register(self, events: Any) -> None:
        events.register_first("needs-retry.s3", self._needs_retry)

    def _needs_retry(
        self, response: Any = None, request_dict: Any = None, **kwargs: Any
    ) -> float | None:
        if response is None or request_dict is None:
            return None
        code = _error_code(response)
        context = request_dict.get("context", {})
        if classify(code) != "expired" or context.get(_CONTEXT_REFRESHED):
            return None
        context[_CONTEXT_REFRESHED] = True
        operation = str(getattr(kwargs.get("operation"), "name", ""))
        refreshed = self.force(code, operation=operation, key=context.get(_CONTEXT_KEY))
        return 0.0 if refreshed else None  # retry now: signed again with the new set

    def force(self, code: str | None, *, operation: str, key: str | None) -> bool:
        """Refresh because S3 called the credentials expired (``code``) in its answer to
        ``operation`` on ``key``; whether a retry now would be signed with a set that is valid.
        Shared by every client and the CRT engine of one uploader."""
        refreshed = self._force(code)
        if self._recorder is not None:
            self._recorder.emit(
                CredentialsRejectedEvent,
                key=key,
                operation=operation,
                code=code or "",
                refreshed=refreshed,
            )
        return refreshed

    def _force(self, code: str | None) -> bool:
        # Held across the refresh: parts rejected meanwhile wait for the new set, then retry.
        with self._lock:
            now = time.monotonic()
            if now - self._last_forced < self.COOLDOWN_SECONDS:
                return True  # a refresh was just forced: retry once with the set it installed
            self._last_forced = now
            try:
                fresh = self._provider.refresh()
            except TaskCredsError as exc:
                logger.warning("S3 said %s and refreshing credentials failed: %s", code, exc)
                return False
        if fresh.expiration <= datetime.now(timezone.utc):
            return False
        logger.info("S3 said %s; refreshed credentials and retrying the request", code)
        return True


class RetryReporter:
    """Reports each request botocore sends again (:class:`RequestRetryEvent`), with what the
    attempt before it met. Only observes: the retry decisions are botocore's and the hooks'."""

    _LAST = "taskcreds_last_attempt"

    def __init__(self, recorder: UploadRecorder) -> None:
        self._recorder = recorder

    def register(self, events: Any) -> None:
        events.register_last("needs-retry.s3", self._note_outcome)
        events.register("before-sign.s3", self._report_retry)

    def _note_outcome(
        self,
        response: Any = None,
        caught_exception: BaseException | None = None,
        request_dict: Any = None,
        **kwargs: Any,
    ) -> None:
        if request_dict is None:
            return
        noted: tuple[str | None, int | None]
        if caught_exception is not None:
            noted = (type(caught_exception).__name__, None)
        else:
            noted = (_error_code(response), _status(response) if response is not None else None)
        request_dict.setdefault("context", {})[self._LAST] = noted

    def _report_retry(self, request: Any = None, operation_name: str = "", **kwargs: Any) -> None:
        context = getattr(request, "context", None) or {}
        attempt = int(context.get("retries", {}).get("attempt", 1))
        if attempt < 2:
            return
        code, status = context.get(self._LAST, (None, None))
        self._recorder.emit(
            RequestRetryEvent,
            key=context.get(_CONTEXT_KEY),
            operation=operation_name,
            attempt=attempt,
            code=code,
            status=status,
        )


@dataclass(frozen=True)
class Unconfirmed:
    """A no-overwrite write refused (412, or NoSuchUpload for a completion) on a retry after an
    attempt whose outcome is unknown: the object S3 holds may be this write's own."""

    operation: str
    #: PutObject: (algorithm, base64 checksum) that was sent.
    checksum: tuple[str, str] | None = None
    #: CompleteMultipartUpload: the parts listed (PartNumber, ETag, Checksum<ALG>).
    parts: tuple[dict[str, Any], ...] = ()


class Ledger:
    """Responses and multipart upload ids, per key, for one client."""

    def __init__(self, recorder: UploadRecorder | None = None) -> None:
        self._recorder = recorder
        self._lock = threading.Lock()
        self._responses: dict[str, dict[str, Any]] = {}
        self._open_uploads: defaultdict[str, set[str]] = defaultdict(set)
        self._multipart_keys: set[str] = set()
        self._unconfirmed: dict[str, Unconfirmed] = {}

    def register(self, events: Any) -> None:
        events.register("before-parameter-build.s3", self._remember_key)
        for operation in ("PutObject", "CompleteMultipartUpload"):
            events.register(f"after-call.s3.{operation}", self._record_response)
        events.register("after-call.s3.CreateMultipartUpload", self._record_started)
        events.register("after-call.s3.AbortMultipartUpload", self._record_aborted)

    def take_unconfirmed(self, key: str) -> Unconfirmed | None:
        """What was sent by a write to ``key`` refused after an attempt with a lost answer."""
        with self._lock:
            return self._unconfirmed.pop(key, None)

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
            self._unconfirmed.pop(key, None)

    @staticmethod
    def _remember_key(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context[_CONTEXT_KEY] = params.get("Key")
        context[_CONTEXT_UPLOAD_ID] = params.get("UploadId")
        parts = (params.get("MultipartUpload") or {}).get("Parts")
        if parts:
            context[_CONTEXT_PARTS] = tuple(dict(part) for part in parts)

    def _record_response(
        self, parsed: dict[str, Any], context: dict[str, Any], model: Any = None, **kwargs: Any
    ) -> None:
        key = context.get(_CONTEXT_KEY)
        if key is None:
            return
        if "Error" in parsed:
            self._record_refusal(key, parsed, context, str(getattr(model, "name", "")))
            return
        with self._lock:
            self._responses[key] = parsed
            if getattr(model, "name", "") == "CompleteMultipartUpload":
                self._open_uploads[key].discard(context.get(_CONTEXT_UPLOAD_ID) or "")

    def _record_refusal(
        self, key: str, parsed: dict[str, Any], context: dict[str, Any], operation: str
    ) -> None:
        if not context.get(_CONTEXT_UNKNOWN_OUTCOME):
            return
        code = str(parsed["Error"].get("Code", ""))
        completed_already = operation == "CompleteMultipartUpload" and code == "NoSuchUpload"
        if classify(code) != "exists" and not completed_already:
            return
        unconfirmed = Unconfirmed(
            operation=operation,
            checksum=context.get(_CONTEXT_CHECKSUM),
            parts=context.get(_CONTEXT_PARTS, ()),
        )
        with self._lock:
            self._unconfirmed[key] = unconfirmed

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
        upload_id = context.get(_CONTEXT_UPLOAD_ID) or ""
        with self._lock:
            self._open_uploads[key].discard(upload_id)
        if self._recorder is not None:  # by the uploader's clean-up or s3transfer's own
            self._recorder.emit(MultipartAbortedEvent, key=key, upload_id=upload_id)
