"""Candidate engines for uploads, one per child process: ``python -m bench._engine_clients
ENGINE DIR PREFIX BUCKET ENDPOINT`` (keys from ``AWS_ACCESS_KEY_ID`` and friends).

- ``crt``: ``awscrt.s3.S3Client`` made directly (not through boto3's ``TransferConfig``, which
  ignores a custom endpoint), ``IN_FLIGHT`` requests at once, each file sent from its path.
- ``crt-checked``: the same with CRC32C (``CHECKSUM_LOCATION=header`` or ``trailer``) and
  ``If-None-Match: *``, the guarantees taskcreds keeps.
- ``obstore``: obstore's ``S3Store`` (Rust ``object_store``) with ``put_async``, ``IN_FLIGHT``
  at once; ``obstore-create`` with ``mode="create"`` (If-None-Match). Needs ``pip install
  obstore``, which taskcreds does not depend on.

Exit status 0 only when every file was stored.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_REGION = "us-east-1"


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def _key(prefix: str, root: Path, path: Path) -> str:
    return prefix.rstrip("/") + "/" + path.relative_to(root).as_posix()


def crt(root: Path, prefix: str, bucket: str, endpoint: str, *, checked: bool) -> int:
    from awscrt.auth import (  # type: ignore[import-untyped]
        AwsCredentialsProvider,
        AwsSignatureType,
        AwsSigningAlgorithm,
        AwsSigningConfig,
    )
    from awscrt.http import HttpHeaders, HttpRequest  # type: ignore[import-untyped]
    from awscrt.io import (  # type: ignore[import-untyped]
        ClientBootstrap,
        DefaultHostResolver,
        EventLoopGroup,
    )
    from awscrt.s3 import (  # type: ignore[import-untyped]
        S3ChecksumAlgorithm,
        S3ChecksumConfig,
        S3ChecksumLocation,
        S3Client,
        S3RequestTlsMode,
        S3RequestType,
    )

    loops = EventLoopGroup()
    credentials = AwsCredentialsProvider.new_static(
        os.environ["AWS_ACCESS_KEY_ID"],
        os.environ["AWS_SECRET_ACCESS_KEY"],
        os.environ.get("AWS_SESSION_TOKEN"),
    )
    signing = AwsSigningConfig(
        algorithm=AwsSigningAlgorithm.V4,
        signature_type=AwsSignatureType.HTTP_REQUEST_HEADERS,
        service="s3",
        region=_REGION,
        credentials_provider=credentials,
    )
    client = S3Client(
        bootstrap=ClientBootstrap(loops, DefaultHostResolver(loops)),
        region=_REGION,
        signing_config=signing,
        tls_mode=S3RequestTlsMode.DISABLED,
        part_size=8 * 1024 * 1024,
        throughput_target_gbps=10.0,
    )
    location = (
        S3ChecksumLocation.HEADER
        if os.environ.get("CHECKSUM_LOCATION") == "header"
        else S3ChecksumLocation.TRAILER
    )
    checksum = (
        S3ChecksumConfig(algorithm=S3ChecksumAlgorithm.CRC32C, location=location)
        if checked
        else None
    )
    host = urlsplit(endpoint).netloc
    slots = threading.Semaphore(int(os.environ.get("IN_FLIGHT", "64")))
    failures: list[Any] = []
    requests: list[Any] = []

    def done(error: Any = None, **kwargs: Any) -> None:
        if error is not None:
            failures.append(error)
        slots.release()

    for path in _files(root):
        slots.acquire()
        headers = [("Host", host), ("Content-Length", str(path.stat().st_size))]
        if checked:
            headers.append(("If-None-Match", "*"))
        request = HttpRequest("PUT", f"/{bucket}/{_key(prefix, root, path)}", HttpHeaders(headers))
        requests.append(
            client.make_request(
                type=S3RequestType.PUT_OBJECT,
                request=request,
                send_filepath=str(path),
                checksum_config=checksum,
                on_done=done,
            )
        )
    for request in requests:
        request.finished_future.exception()
    if failures:
        print(f"{len(failures)} failed, e.g. {failures[0]}", file=sys.stderr)
        return 1
    return 0


def obstore(root: Path, prefix: str, bucket: str, endpoint: str, *, create: bool) -> int:
    import asyncio
    from datetime import datetime, timedelta, timezone

    import obstore as obs  # type: ignore[import-not-found]
    from obstore.store import S3Store  # type: ignore[import-not-found]

    def credentials() -> dict[str, Any]:
        return {
            "access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
            "secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
            "token": os.environ.get("AWS_SESSION_TOKEN"),
            "expires_at": datetime.now(timezone.utc) + timedelta(minutes=30),
        }

    store = S3Store(
        bucket,
        endpoint=endpoint,
        region=_REGION,
        allow_http=True,
        virtual_hosted_style_request=False,
        credential_provider=credentials,
        conditional_put="etag",
    )

    async def upload_all() -> None:
        slots = asyncio.Semaphore(int(os.environ.get("IN_FLIGHT", "32")))

        async def one(path: Path) -> None:
            async with slots:
                mode = "create" if create else "overwrite"
                await obs.put_async(store, _key(prefix, root, path), path.read_bytes(), mode=mode)

        await asyncio.gather(*(one(path) for path in _files(root)))

    asyncio.run(upload_all())
    return 0


def main(argv: list[str]) -> int:
    engine, root, prefix, bucket, endpoint = argv
    where = (Path(root), prefix, bucket, endpoint)
    if engine in ("crt", "crt-checked"):
        return crt(*where, checked=engine == "crt-checked")
    if engine in ("obstore", "obstore-create"):
        return obstore(*where, create=engine == "obstore-create")
    raise SystemExit(f"unknown engine {engine!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
