"""The upload clients P4–P6 run, one per child process: ``python -m bench._clients COMMAND ...``.

- ``ours-file FILE KEY``: ``taskcreds.Uploader.upload_file`` (credentials from the container
  endpoint in ``AWS_CONTAINER_CREDENTIALS_FULL_URI``).
- ``boto3-file FILE KEY``: boto3's ``upload_file`` with the default ``TransferConfig``.
- ``ours-dir DIR PREFIX``: ``Uploader.upload_dir(DIR, skip_unchanged=False)`` under PREFIX.
- ``boto3-loop DIR PREFIX``: one ``put_object`` per file, one after another.

Both take ``--bucket`` and ``--endpoint`` (the local S3). boto3 reads its keys from the
environment. Exit status 0 only when every file was uploaded.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

_REGION = "us-east-1"


def _boto3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", _REGION),
        config=Config(s3={"addressing_style": "path"}),
    )


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def ours_file(args: argparse.Namespace) -> int:
    from taskcreds import Uploader

    with Uploader(args.bucket, "", endpoint_url=args.endpoint, region_name=_REGION) as uploader:
        uploaded = uploader.upload_file(args.path, args.key)
    return 0 if uploaded.size == Path(args.path).stat().st_size else 1


def boto3_file(args: argparse.Namespace) -> int:
    client = _boto3_client(args.endpoint)
    client.upload_file(args.path, args.bucket, args.key)
    client.close()
    return 0


def ours_dir(args: argparse.Namespace) -> int:
    from taskcreds import Uploader

    with Uploader(
        args.bucket, args.key, endpoint_url=args.endpoint, region_name=_REGION
    ) as uploader:
        outcome = uploader.upload_dir(args.path, skip_unchanged=False)
    if outcome.failed:
        print(f"{len(outcome.failed)} failed, e.g. {outcome.failed[0]}", file=sys.stderr)
        return 1
    return 0


def boto3_loop(args: argparse.Namespace) -> int:
    client = _boto3_client(args.endpoint)
    root = Path(args.path)
    prefix = args.key.rstrip("/") + "/"
    for path in _files(root):
        key = prefix + path.relative_to(root).as_posix()
        with path.open("rb") as body:
            client.put_object(Bucket=args.bucket, Key=key, Body=body)
    client.close()
    return 0


COMMANDS = {
    "ours-file": ours_file,
    "boto3-file": boto3_file,
    "ours-dir": ours_dir,
    "boto3-loop": boto3_loop,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._clients")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("path", help="the file or directory to upload")
    parser.add_argument("key", help="the key (file) or key prefix (directory)")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
