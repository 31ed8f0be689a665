"""taskcreds.aio.session() with the real aiobotocore against SeaweedFS and AppA's real STS
credentials: signed with the provider's key, through a rotation, fail-closed. Runs in the aio
venv (`make test-aio`): aiobotocore pins a botocore the aws CLI of the main venv cannot share."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiobotocore.session import AioSession

import taskcreds
from taskcreds.aio import AsyncCredentialProvider, session
from taskcreds.credentials import Credentials
from taskcreds.errors import EndpointUnreachableError
from taskcreds.local import AgentServer
from taskcreds_demo.seaweed import SeaweedFS
from tests.support.s3proxy import S3Proxy


@pytest.fixture
def proxy(seaweed: SeaweedFS) -> Iterator[S3Proxy]:
    with S3Proxy(seaweed.s3_endpoint) as running:
        yield running


def test_a_client_signs_with_the_providers_key_through_a_rotation(
    seaweed: SeaweedFS, proxy: S3Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Static keys in the environment are ignored: the session fails closed.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    issued: list[Credentials] = []

    def source() -> Credentials:
        credentials = seaweed.assume_role("AppA")
        issued.append(credentials)
        return credentials

    async def scenario() -> list[str]:
        with AgentServer(source) as server:
            async with AsyncCredentialProvider(server.environment()) as provider:
                aio = session(provider=provider, region_name=seaweed.region)
                assert isinstance(aio, AioSession)
                async with aio.create_client("s3", endpoint_url=proxy.url) as s3:
                    keys = []
                    for round_ in range(3):
                        key = f"t-aio-session/{round_}.txt"
                        await s3.put_object(Bucket="app-a", Key=key, Body=b"%d" % round_)
                        got = await s3.get_object(Bucket="app-a", Key=key)
                        assert await got["Body"].read() == b"%d" % round_
                        keys.append(key)
                        await provider.refresh()  # the agent hands out a new STS session
                    for key in keys:
                        await s3.delete_object(Bucket="app-a", Key=key)
                    return keys

    asyncio.run(scenario())
    puts = proxy.of("PutObject")
    assert [p.status for p in puts] == [200, 200, 200]
    signers = [p.access_key for p in puts]
    assert signers == [c.access_key_id for c in issued[:3]]
    assert len(set(signers)) == 3


def test_another_apps_bucket_is_refused(seaweed: SeaweedFS, proxy: S3Proxy) -> None:
    from botocore.exceptions import ClientError

    async def scenario() -> str:
        with AgentServer(lambda: seaweed.assume_role("AppA")) as server:
            provider = taskcreds.CredentialProvider(server.environment())
            aio = session(provider=provider, region_name=seaweed.region)
            async with aio.create_client("s3", endpoint_url=proxy.url) as s3:
                with pytest.raises(ClientError) as refused:
                    await s3.put_object(Bucket="app-b", Key="intrusion.txt", Body=b"x")
            provider.close()
            return str(refused.value.response["Error"]["Code"])

    assert asyncio.run(scenario()) == "AccessDenied"


def test_no_credentials_is_the_providers_typed_error(proxy: S3Proxy) -> None:
    dead = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/creds"}

    async def scenario() -> None:
        async with AsyncCredentialProvider(dead, timeout=1.0) as provider:
            aio = session(provider=provider, region_name="us-east-1")
            async with aio.create_client("s3", endpoint_url=proxy.url) as s3:
                with pytest.raises(EndpointUnreachableError):
                    await s3.put_object(Bucket="app-a", Key="nothing.txt", Body=b"x")

    asyncio.run(scenario())
    assert proxy.of("PutObject") == []  # nothing was sent unsigned or signed with other keys


def test_many_clients_share_one_fetch() -> None:
    async def scenario() -> None:
        with AgentServer(_static) as server:
            async with AsyncCredentialProvider(server.environment()) as provider:
                aio = session(provider=provider, region_name="us-east-1")
                credentials = await asyncio.gather(*(aio.get_credentials() for _ in range(50)))
                frozen = await asyncio.gather(*(c.get_frozen_credentials() for c in credentials))
                assert {f.access_key for f in frozen} == {"ASIASTATICSTATIC0001"}
            assert server.request_count == 1

    asyncio.run(scenario())


def _static() -> Credentials:
    from datetime import datetime, timedelta, timezone

    return Credentials(
        access_key_id="ASIASTATICSTATIC0001",
        secret_access_key="x" * 40,
        token="token",
        expiration=datetime.now(timezone.utc) + timedelta(hours=1),
    )
