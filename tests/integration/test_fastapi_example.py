"""docs/examples/fastapi/app.py, the AsyncUploader in a FastAPI app, exercised over ASGI with
httpx.AsyncClient against SeaweedFS and AppA's real STS credentials (through a local agent)."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from taskcreds.local import AgentServer
from taskcreds_demo.seaweed import SeaweedFS

from .test_upload_crt import head

APP = Path(__file__).resolve().parents[2] / "docs" / "examples" / "fastapi" / "app.py"


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fastapi_example_{uuid.uuid4().hex}", APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_app_uploads_refuses_and_reports_health(
    seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"t-fastapi-{uuid.uuid4().hex[:8]}/"
    with AgentServer(lambda: seaweed.assume_role("AppA")) as agent:
        for name, value in {
            **seaweed.environment(),
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.full_uri,
            "TASKCREDS_BUCKET": "app-a",
            "TASKCREDS_PREFIX": prefix,
        }.items():
            monkeypatch.setenv(name, value)
        example = load_app()

        async def scenario() -> list[httpx.Response]:
            app: Any = example.app
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://app.test"
                ) as client,
            ):
                return [
                    await client.put("/files/reports/day.csv", content=b"day,count\n1,42\n"),
                    await client.put("/files/reports/day.csv", content=b"again"),
                    await client.put("/files/reports/day.csv?overwrite=true", content=b"v2"),
                    await client.put("/files/../escape.txt", content=b"x"),
                    await client.put("/files/%2E%2E/escape.txt", content=b"x"),
                    await client.get("/healthz"),
                ]

        answers = asyncio.run(scenario())
    stored, exists, replaced, escaped, encoded, health = answers
    assert stored.status_code == 200, stored.text
    assert stored.json()["key"] == f"{prefix}reports/day.csv"
    assert stored.json()["checksum"].startswith("CRC32C:")
    assert exists.status_code == 409
    assert replaced.status_code == 200
    assert head(seaweed, f"{prefix}reports/day.csv")["Body"] == b"v2"
    # httpx normalises "../" away before sending (no route: 404); the encoded form reaches the
    # key policy, which refuses it.
    assert escaped.status_code == 404
    assert encoded.status_code == 400, encoded.text
    assert health.status_code == 200
    assert health.json()["fetches_ok"] >= 1
