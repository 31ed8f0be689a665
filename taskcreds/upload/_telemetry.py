"""One uploader's event counts and event stream (:mod:`taskcreds.upload.events`)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from taskcreds import telemetry
from taskcreds.telemetry import EventListener
from taskcreds.upload.events import (
    AbortFailedEvent,
    CredentialsRejectedEvent,
    MultipartAbortedEvent,
    RequestRetryEvent,
    UploaderStats,
    UploadEvent,
)

__all__ = ["UploadRecorder"]

_COUNTED = {
    RequestRetryEvent: "request_retries",
    CredentialsRejectedEvent: "credentials_rejected",
    MultipartAbortedEvent: "multipart_aborted",
    AbortFailedEvent: "abort_failures",
}


class UploadRecorder:
    """Counts an uploader's events and queues them for its listener and the process-wide ones
    (never calling a listener in the uploading thread)."""

    def __init__(self, *, bucket: str, prefix: str, on_event: EventListener | None) -> None:
        self.bucket = bucket
        self.source = f"s3://{bucket}/{prefix}"
        self._on_event = on_event
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def emit(self, kind: type[UploadEvent], **fields: Any) -> None:
        event = kind(
            at=datetime.now(timezone.utc), source=self.source, bucket=self.bucket, **fields
        )
        with self._lock:
            self._counts[_COUNTED[kind]] += 1
        telemetry._publish(event, self._on_event)

    def stats(self) -> UploaderStats:
        with self._lock:
            counts = dict(self._counts)
        return UploaderStats(
            source=self.source, **{name: counts.get(name, 0) for name in _COUNTED.values()}
        )
