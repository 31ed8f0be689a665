"""``python -m app``: upload one object with the task role, read it back, print one line.

Everything comes from the environment, as in an ECS task: the credentials endpoint
(``AWS_CONTAINER_CREDENTIALS_FULL_URI`` or ``..._RELATIVE_URI``), the bucket and prefix
(``TASKCREDS_BUCKET``, ``TASKCREDS_PREFIX``), the region, and, against a local S3, where it is
(``AWS_ENDPOINT_URL_S3``). The app holds no keys. Exit code 0 when the object read back is the
one written; otherwise 1, with the reason (and, for a taskcreds error, its hint) on stderr.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timezone

import taskcreds


def main() -> int:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = f"hello from the example app, {stamp}\n".encode()
    try:
        role = taskcreds.get_credentials().role_arn or "(no role ARN)"
        with taskcreds.Uploader() as uploader:  # TASKCREDS_BUCKET and TASKCREDS_PREFIX
            result = uploader.upload_bytes(body, f"hello/{uuid.uuid4().hex}.txt", overwrite=False)
        s3 = taskcreds.session().client("s3")  # the task role again, and nothing else
        stored = s3.get_object(Bucket=uploader.bucket, Key=result.key)["Body"].read()
    except taskcreds.TaskCredsError as exc:
        print(f"app: {exc}", file=sys.stderr)  # messages and hints never hold a secret
        return 1
    if stored != body:
        print(f"app: {result.uri} read back other bytes than it wrote", file=sys.stderr)
        return 1
    print(f"app: wrote and read back {result.uri} ({result.size} bytes) as {role}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
