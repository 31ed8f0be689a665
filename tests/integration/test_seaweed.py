"""The SeaweedFS fixture is real: SigV4, STS session credentials, per-bucket role policies, expiry."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import taskcreds_demo.seaweed as seaweed_module
from taskcreds.credentials import Credentials
from taskcreds_demo.seaweed import (
    SeaweedError,
    SeaweedFS,
    WeedNotFoundError,
    bucket_policy,
    find_weed,
)
from tests.conftest import unavailable


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code"))


def unique_key() -> str:
    return f"test-seaweed/{uuid.uuid4().hex}.txt"


def object_exists(seaweed: SeaweedFS, bucket: str, key: str) -> bool:
    with closing(seaweed.admin_client("s3")) as s3:
        answer = s3.list_objects_v2(Bucket=bucket, Prefix=key)
    return any(item.get("Key") == key for item in answer.get("Contents", []))


def test_admin_sees_the_role_buckets(seaweed: SeaweedFS) -> None:
    with closing(seaweed.admin_client("s3")) as s3:
        names = {bucket.get("Name") for bucket in s3.list_buckets()["Buckets"]}
    assert {"app-a", "app-b"} <= names
    assert seaweed.s3_endpoint.startswith("http://127.0.0.1:")


def test_assume_role_returns_session_credentials(seaweed: SeaweedFS) -> None:
    creds = seaweed.assume_role("AppA")

    assert isinstance(creds, Credentials)
    assert creds.access_key_id.startswith("ASIA")
    assert creds.secret_access_key
    assert len(creds.token) > 100
    assert creds.role_arn == "arn:aws:iam::123456789012:role/AppA"
    assert creds.account_id == "123456789012"
    assert creds.expiration.tzinfo == timezone.utc
    left = creds.expiration - datetime.now(timezone.utc)
    assert timedelta(minutes=55) < left <= timedelta(hours=1, seconds=5)
    # Each call is a new session.
    assert seaweed.assume_role("AppA").access_key_id != creds.access_key_id


def test_role_writes_and_reads_its_own_bucket(seaweed: SeaweedFS) -> None:
    creds = seaweed.assume_role("AppA")
    key = unique_key()
    with closing(seaweed.client("s3", creds)) as s3:
        s3.put_object(Bucket="app-a", Key=key, Body=b"hello from AppA")
        answer = s3.get_object(Bucket="app-a", Key=key)
        with closing(answer["Body"]) as body:
            assert body.read() == b"hello from AppA"


def test_role_is_denied_the_other_bucket(seaweed: SeaweedFS) -> None:
    creds = seaweed.assume_role("AppA")
    key = unique_key()
    with closing(seaweed.client("s3", creds, retries={"total_max_attempts": 1})) as s3:
        with pytest.raises(ClientError) as denied_put:
            s3.put_object(Bucket="app-b", Key=key, Body=b"must not land")
        with pytest.raises(ClientError) as denied_list:
            s3.list_objects_v2(Bucket="app-b")

    assert error_code(denied_put.value) == "AccessDenied"
    assert denied_put.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error_code(denied_list.value) == "AccessDenied"
    assert not object_exists(seaweed, "app-b", key)


def test_credentials_stop_working_after_expiry() -> None:
    if find_weed() is None:
        unavailable("no 'weed' binary")
    began = time.monotonic()
    with SeaweedFS(token_duration="10s") as short:
        creds = short.assume_role("AppB")
        lifetime = creds.expiration - datetime.now(timezone.utc)
        assert timedelta(seconds=5) < lifetime <= timedelta(seconds=11)
        with closing(short.client("s3", creds, retries={"total_max_attempts": 1})) as s3:
            s3.put_object(Bucket="app-b", Key="before-expiry", Body=b"ok")
            # Sleep to the stated expiry, then poll briefly: SeaweedFS rejects right at it.
            time.sleep(max(0.0, (creds.expiration - datetime.now(timezone.utc)).total_seconds()))
            deadline = time.monotonic() + 3
            rejected: ClientError | None = None
            while rejected is None and time.monotonic() < deadline:
                try:
                    s3.put_object(Bucket="app-b", Key="after-expiry", Body=b"late")
                except ClientError as exc:
                    rejected = exc
                else:
                    time.sleep(0.2)
        assert rejected is not None, "expired credentials were still accepted 3 s after expiry"
        assert rejected.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert error_code(rejected) in {"InvalidAccessKeyId", "ExpiredToken"}
    assert time.monotonic() - began <= 15


def _aws_cli() -> str:
    beside = Path(sys.executable).parent / "aws"
    found = str(beside) if beside.is_file() else shutil.which("aws")
    if found is None:
        unavailable("no 'aws' CLI next to the interpreter or on PATH (pip install awscli)")
    return found


def _run_aws(
    seaweed: SeaweedFS, creds: Credentials, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        # No profile, no shared files, no instance metadata: only what the test gives it.
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_SESSION_TOKEN": creds.token,
        **seaweed.environment(),
    }
    return subprocess.run(
        [_aws_cli(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_aws_cli_uses_role_credentials(seaweed: SeaweedFS, tmp_path: Path) -> None:
    creds = seaweed.assume_role("AppA")
    key = unique_key()
    with closing(seaweed.client("s3", creds)) as s3:
        s3.put_object(Bucket="app-a", Key=key, Body=b"listed")

    listed = _run_aws(seaweed, creds, tmp_path, "s3", "ls", "s3://app-a/test-seaweed/")
    assert listed.returncode == 0, listed.stderr
    assert key.rsplit("/", 1)[1] in listed.stdout

    denied = _run_aws(seaweed, creds, tmp_path, "s3", "ls", "s3://app-b")
    assert denied.returncode != 0
    assert "AccessDenied" in denied.stderr


def test_role_policies_replace_the_default_policy() -> None:
    custom = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::x/*"}
        ],
    }
    server = SeaweedFS(roles={"AppA": "app-a"}, role_policies={"AppA": custom, "Reader": custom})
    config = server.iam_config()

    assert [role["roleName"] for role in config["roles"]] == ["AppA", "Reader"]
    assert config["roles"][0]["roleArn"] == "arn:aws:iam::123456789012:role/AppA"
    assert [policy["document"] for policy in config["policies"]] == [custom, custom]
    assert server.buckets == ["app-a"]
    assert config["sts"]["tokenDuration"] == "1h"
    assert config["policy"]["defaultEffect"] == "Deny"
    assert SeaweedFS().iam_config()["policies"][1]["document"] == bucket_policy("app-b")


def test_failed_start_raises_with_the_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'fake weed: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    server = SeaweedFS(weed=str(fake))

    with pytest.raises(SeaweedError, match="status 3") as failed:
        server.start()

    assert "fake weed: cannot start" in str(failed.value)
    assert not server.data_dir.exists()  # the temporary directory is gone
    assert not server.running
    server.stop()  # idempotent


def test_missing_weed_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seaweed_module, "find_weed", lambda: None)
    with pytest.raises(WeedNotFoundError):
        SeaweedFS().start()


def test_taken_port_is_picked_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if find_weed() is None:
        unavailable("no 'weed' binary")
    real_pick = seaweed_module._pick_ports
    picks: list[list[int]] = []
    with closing(socket.socket()) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]

        def pick(count: int) -> list[int]:
            ports = real_pick(count)
            if not picks:
                ports[0] = taken
            picks.append(ports)
            return ports

        monkeypatch.setattr(seaweed_module, "_pick_ports", pick)
        with SeaweedFS(tmp_path / "data", roles={}) as server:
            assert len(picks) == 2
            assert server.s3_port != taken
            with closing(server.admin_client("s3")) as s3:
                s3.list_buckets()
        assert (tmp_path / "data" / "weed.log").exists()  # a given data dir is kept
