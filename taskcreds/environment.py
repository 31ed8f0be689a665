"""Names of the environment variables taskcreds reads.

They are read when a provider or uploader is made (or a command runs), never at import time, and
always from a mapping that callers may pass in place of ``os.environ``.
"""

from __future__ import annotations

RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
"""Path on ``http://169.254.170.2`` set by the ECS agent in every task that has a task role.
Wins over :data:`FULL_URI` when both are set, as in every AWS SDK."""

FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
"""A whole URL: EKS Pod Identity (``http://169.254.170.23/v1/credentials``) or a local emulator."""

AUTH_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
"""A file whose content is sent as the ``Authorization`` header; re-read on every fetch because
EKS rotates it. Beats :data:`AUTH_TOKEN`."""

AUTH_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
"""The ``Authorization`` header value itself."""

ALLOWED_HOSTS = "TASKCREDS_ALLOWED_HOSTS"
"""Comma-separated extra host names (or addresses) that ``FULL_URI`` may name over plain http,
such as ``host.docker.internal`` or a compose service name."""

BUCKET = "TASKCREDS_BUCKET"
"""The app's own S3 bucket: the default for :class:`taskcreds.Uploader`."""

PREFIX = "TASKCREDS_PREFIX"
"""The key prefix inside :data:`BUCKET` the app may write under."""

ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
"""Static keys: boto3 prefers them over the container endpoint; taskcreds ignores them and warns."""

REGION = "AWS_REGION"
"""The region, as the AWS SDKs other than botocore (and ECS task definitions) name it; taskcreds
reads it first, before :data:`DEFAULT_REGION`."""

DEFAULT_REGION = "AWS_DEFAULT_REGION"
"""The region as botocore and the aws CLI name it."""

ECS_HOST = "169.254.170.2"
"""The address at which every ECS task reaches its agent's credentials endpoint."""
