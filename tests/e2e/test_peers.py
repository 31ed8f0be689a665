"""Peers on loopback: plain botocore and the aws CLI against ``serve-local`` and real STS/S3.

These run on 127.0.0.1 only (no namespace needed): serve-local, SeaweedFS, and the peers are all
local processes with scrubbed environments.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskcreds_demo.seaweed import SeaweedFS

from .conftest import clean_env, serve_local

pytestmark = pytest.mark.e2e

BOTOCORE_ALONE = """
import boto3
frozen = boto3.Session().get_credentials().get_frozen_credentials()
print(frozen.access_key, frozen.token)
"""


def test_botocore_alone_gets_the_same_credentials() -> None:
    with serve_local(["--fake"], clean_env()) as served:
        full_uri = served["environment"]["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        env = clean_env(AWS_CONTAINER_CREDENTIALS_FULL_URI=full_uri)
        peer = subprocess.run(
            [sys.executable, "-c", BOTOCORE_ALONE],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        ours = subprocess.run(
            [sys.executable, "-m", "taskcreds", "export", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    access_key, token = peer.stdout.split()
    exported = json.loads(ours.stdout)
    assert exported["AccessKeyId"] == access_key
    assert exported["SessionToken"] == token


def aws(
    args: list[str], env: dict[str, str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    command = [str(Path(sys.executable).with_name("aws")), *args]
    return subprocess.run(
        command, env=env, input=stdin, capture_output=True, timeout=60, check=False
    )


def test_aws_cli_credential_process_signs_real_requests(seaweed: SeaweedFS, tmp_path: Path) -> None:
    admin = clean_env(
        **seaweed.environment(),
        AWS_ACCESS_KEY_ID=seaweed.admin_access_key,
        AWS_SECRET_ACCESS_KEY=seaweed.admin_secret_key,
    )
    with serve_local(["--role-arn", seaweed.role_arn("AppA")], admin) as served:
        config = tmp_path / "aws-config"
        config.write_text(
            "[default]\n"
            f"credential_process = {sys.executable} -m taskcreds export --format process\n"
            f"region = {seaweed.region}\n"
        )
        # The aws CLI has no keys of its own: only credential_process, which asks serve-local.
        env = clean_env(
            **seaweed.environment(),
            AWS_CONFIG_FILE=str(config),
            AWS_CONTAINER_CREDENTIALS_FULL_URI=served["environment"][
                "AWS_CONTAINER_CREDENTIALS_FULL_URI"
            ],
        )
        written = aws(
            ["s3", "cp", "-", "s3://app-a/peer/hello.txt"], env, stdin=b"hello from aws\n"
        )
        assert written.returncode == 0, written.stderr
        listed = aws(["s3", "ls", "s3://app-a/peer/"], env)
        assert listed.returncode == 0, listed.stderr
        assert b"hello.txt" in listed.stdout
        read_back = aws(["s3", "cp", "s3://app-a/peer/hello.txt", "-"], env)
        assert read_back.stdout == b"hello from aws\n"
        # AppA's session may not touch app-b: proof the CLI signed with the served role, not admin.
        denied = aws(["s3", "cp", "-", "s3://app-b/peer/nope.txt"], env, stdin=b"x")
        assert denied.returncode != 0
        assert b"AccessDenied" in denied.stderr
