"""An upload service for an ECS task: PUT /files/<name> stores the body under the task's prefix.

Run it in the task with ``uvicorn app:app`` (TASKCREDS_BUCKET and TASKCREDS_PREFIX set in the
task definition). Credentials come from the task role, refreshed in the background; nothing here
blocks the event loop (docs/asyncio.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from taskcreds import AccessDeniedError, KeyOutsidePrefixError, ObjectExistsError, UploadError
from taskcreds.aio import AsyncCredentialProvider, AsyncUploader

#: The largest body accepted (it is held in memory while it is uploaded).
MAX_BODY = 64 * 1024 * 1024


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with (
        AsyncCredentialProvider(prefetch=True) as provider,
        AsyncUploader(provider=provider) as uploader,
    ):
        app.state.provider = provider
        app.state.uploader = uploader
        yield


app = FastAPI(lifespan=lifespan)


@app.put("/files/{name:path}")
async def put_file(name: str, request: Request, overwrite: bool = False) -> dict[str, Any]:
    if int(request.headers.get("content-length", "0")) > MAX_BODY:
        raise HTTPException(413, f"at most {MAX_BODY} bytes")
    body = await request.body()
    uploader: AsyncUploader = app.state.uploader
    try:
        result = await uploader.upload_bytes(body, name, overwrite=overwrite)
    except KeyOutsidePrefixError as exc:
        raise HTTPException(400, exc.message) from exc
    except ObjectExistsError as exc:
        raise HTTPException(409, f"{name} exists; PUT with ?overwrite=true to replace it") from exc
    except AccessDeniedError as exc:
        raise HTTPException(403, exc.message) from exc
    except UploadError as exc:
        raise HTTPException(502, exc.message) from exc
    return {
        "key": result.key,
        "size": result.size,
        "etag": result.etag,
        "checksum": f"{result.checksum_algorithm}:{result.checksum}",
    }


@app.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Whether the task's credentials are good for at least five more minutes."""
    stats = app.state.provider.stats()
    left = stats.expires_in
    if left is None or left < 300:
        raise HTTPException(503, "credentials expire within 5 minutes (or none yet)")
    return {"expires_in": round(left), "fetches_ok": stats.fetches_ok}
