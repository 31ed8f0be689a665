"""asyncio: credentials and uploads that never block the event loop (docs/asyncio.md).

- :class:`AsyncCredentialProvider`: ``await get()`` with the sync provider's one policy; a fetch
  runs in the provider's own worker thread, shared by every coroutine waiting for it.
- :class:`AsyncUploader`: the :class:`~taskcreds.Uploader`'s guarantees, each upload in a
  bounded pool of its own; cancelling one aborts its multipart upload.
- :func:`session`: an aiobotocore ``AioSession`` on the provider, fail-closed
  (``pip install 'taskcreds[aio]'``).

Importing this package imports neither boto3 nor aiobotocore.
"""

from __future__ import annotations

from taskcreds.aio._provider import AsyncCredentialProvider
from taskcreds.aio._session import session
from taskcreds.aio._uploader import AsyncUploader

__all__ = ["AsyncCredentialProvider", "AsyncUploader", "session"]
