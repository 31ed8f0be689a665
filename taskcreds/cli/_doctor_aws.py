"""The steps of ``taskcreds doctor`` that call AWS with the credentials: region, STS
GetCallerIdentity and the write probe.

The write probe puts ``PREFIX.taskcreds-doctor-<32 hex digits>`` with ``If-None-Match: *`` and
then deletes it; a least-privilege role may not ``s3:DeleteObject``, and then the object stays at
that key (a warning names it, the check still passes). botocore is imported inside the steps only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from taskcreds import environment as env
from taskcreds._awserror import error_code_and_message
from taskcreds._region import checked_region, region_from_environment
from taskcreds.cli._common import (
    EXIT_ACCESS_DENIED,
    EXIT_CONFIG,
    EXIT_EXPIRED,
    EXIT_UNREACHABLE,
    EXIT_UPLOAD,
)
from taskcreds.cli._doctor_steps import Checks, Step
from taskcreds.credentials import Credentials
from taskcreds.errors import ConfigError, TaskCredsError
from taskcreds.provider import CredentialProvider
from taskcreds.sources import StaticSource
from taskcreds.upload._errors import classify

#: The write probe's key, after the prefix (``uuid4().hex`` completes it).
PROBE_NAME = ".taskcreds-doctor-"


class AwsChecks(Checks):
    """What AWS itself says of the credentials (``--sts``, ``--bucket``)."""

    def check_region(self) -> str | None:
        """The region STS and S3 are called in: the one resolution the session and uploader use."""
        name = "region"
        try:
            region, where = region_from_environment(None, self.environ)
            if region is None:
                region, where = _configured_region()
        except ConfigError as error:
            variable = error.message.split("=", 1)[0]
            self._fail(
                name,
                error.message,
                f"{variable} is set, but malformed: botocore refuses it before any request",
                f"set {variable} to a region name such as eu-west-1 (lowercase letters, digits "
                "and dashes, no spaces), or unset it",
                EXIT_CONFIG,
            )
        if region is None:
            detail = (
                f"none set ({env.REGION}, {env.DEFAULT_REGION}, AWS config): boto3 uses "
                "us-east-1 and the global STS endpoint"
            )
        else:
            detail = f"{region} from {where}"
        self.steps.append(Step(name, True, detail))
        return region

    def check_sts(self, credentials: Credentials, region: str | None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with _static_client("sts", credentials, region, self.environ) as sts:
                identity = sts.get_caller_identity()
        except ClientError as error:
            code = _error_code(error)
            self._fail(
                "sts",
                f"GetCallerIdentity refused: {code}",
                _sts_cause(code),
                "run `taskcreds show` to see the role; check the clock and the role's trust",
                EXIT_EXPIRED if "Expired" in code else EXIT_ACCESS_DENIED,
            )
        except BotoCoreError as error:
            self._fail(
                "sts",
                f"GetCallerIdentity failed: {error}",
                _unreachable_cause("STS", region),
                _unreachable_fix("STS", region),
                EXIT_UNREACHABLE,
            )
        self.steps.append(Step("sts", True, f"STS says this is {identity.get('Arn')}"))

    def check_write(
        self, credentials: Credentials, bucket: str, prefix: str, region: str | None
    ) -> None:
        """Put the probe through the uploader itself (``If-None-Match: *``), signed with exactly
        these credentials, in the region :meth:`check_region` found; then delete it."""
        from taskcreds.upload import Uploader

        name = f"{PROBE_NAME}{uuid.uuid4().hex}"
        key = f"{prefix}{name}"
        resource = f"arn:aws:s3:::{bucket}/{key}"
        provider = _static_provider(credentials)
        try:
            with Uploader(
                bucket,
                prefix,
                provider=provider,
                region_name=region,
                environ=_signing_environ(self.environ),
            ) as uploader:
                uploader.upload_bytes(
                    b"taskcreds doctor probe\n", name, overwrite=False, content_type="text/plain"
                )
        except TaskCredsError as error:
            code, unreachable = _s3_cause(error)
            if code is not None:
                cause, fix, exit_code = _write_probe_finding(code, "s3:PutObject", bucket, prefix)
                self._fail(
                    "write probe",
                    f"s3:PutObject on {resource} refused: {code}",
                    cause,
                    fix,
                    exit_code,
                )
            if unreachable is not None:
                self._fail(
                    "write probe",
                    f"cannot reach S3: {unreachable}",
                    _unreachable_cause("S3", region),
                    _unreachable_fix("S3", region),
                    EXIT_UPLOAD,
                )
            self._fail_with("write probe", error)
        finally:
            provider.close()
        warnings = _delete_probe(credentials, bucket, key, region, self.environ)
        detail = f"wrote s3://{bucket}/{key} with If-None-Match: *"
        self.steps.append(Step("write probe", True, detail, warnings=warnings))


def _configured_region() -> tuple[str | None, str | None]:
    """boto3's own configuration (a profile's ``region``), checked as the variables are."""
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        value = botocore.session.Session().get_config_variable("region")
    except BotoCoreError:  # such as AWS_PROFILE naming no profile: the client will say so
        return None, None
    if not value:
        return None, None
    return checked_region(str(value), "region in the AWS config file"), "the AWS config file"


def _unreachable_cause(service: str, region: str | None) -> str:
    where = f"in {region}" if region else "with no region set (us-east-1 / global endpoint)"
    return f"{service} cannot be reached {where}: no route, a proxy, or a private network"


def _unreachable_fix(service: str, region: str | None) -> str:
    variable = f"AWS_ENDPOINT_URL_{service.upper()}"
    if region is None:
        return f"set {env.REGION} to the task's region, or {variable} for a private endpoint"
    return (
        f"give the task a route to {service} (NAT, or a VPC endpoint and {variable}); "
        f"check that {region} is the right region"
    )


def _delete_probe(
    credentials: Credentials, bucket: str, key: str, region: str | None, environ: Mapping[str, str]
) -> list[str]:
    """Remove the probe object; a least-privilege role may not, which is a note, not a fault."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        with _static_client("s3", credentials, region, environ) as s3:
            s3.delete_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as error:
        return [
            f"the probe object was left behind: s3:DeleteObject refused ({_error_code(error)}), "
            f"as the least-privilege policy intends; delete it, or expire '{PROBE_NAME}*' "
            "with a lifecycle rule"
        ]
    return []


def _s3_cause(error: TaskCredsError) -> tuple[str | None, Exception | None]:
    """(S3's error code, or the connection error) behind an upload error: its ``__cause__``."""
    from botocore.exceptions import BotoCoreError

    cause = error.__cause__
    code = error_code_and_message(cause)[0] if isinstance(cause, Exception) else None
    if code:
        return code, None
    if isinstance(cause, BotoCoreError):
        return None, cause
    return None, None


def _error_code(error: Exception) -> str:
    return error_code_and_message(error)[0] or "?"


def _write_probe_finding(code: str, action: str, bucket: str, prefix: str) -> tuple[str, str, int]:
    """(cause, fix, exit code) for an S3 error answered to the write probe."""
    kind = classify(code)
    if kind == "denied":
        return (
            f"the task role lacks {action} on arn:aws:s3:::{bucket}/{prefix}*",
            f"grant {action} on arn:aws:s3:::{bucket}/{prefix}* to the task role "
            "(docs/uploading.md lists the actions each feature needs)",
            EXIT_ACCESS_DENIED,
        )
    if kind == "expired":
        return (
            "S3 does not accept these credentials: expired, or from another partition/endpoint",
            "check the clock, and that AWS_ENDPOINT_URL_S3 (if set) is the S3 of this account",
            EXIT_EXPIRED,
        )
    if kind == "no_bucket":
        return (
            f"bucket {bucket} does not exist (or is in another account)",
            "check TASKCREDS_BUCKET / --bucket and the region",
            EXIT_UPLOAD,
        )
    return f"S3 answered {code}", "check the bucket name and region", EXIT_UPLOAD


def _sts_cause(code: str) -> str:
    return {
        "ExpiredToken": "the session token has expired",
        "InvalidClientTokenId": "STS does not recognise the access key (wrong partition/region?)",
        "SignatureDoesNotMatch": "the request signature is wrong: clock skew or a mangled secret",
    }.get(code, f"STS refused the credentials ({code})")


def _signing_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without static keys: the session ignores them, and its warning naming the
    provider's endpoint has none to name for a static provider (the environment step already
    warned about them)."""
    return {name: value for name, value in environ.items() if name != env.ACCESS_KEY_ID}


def _static_provider(credentials: Credentials) -> CredentialProvider:
    """A provider that hands out exactly ``credentials``: the doctor checks this one set."""
    return CredentialProvider.from_source(StaticSource(credentials))


class _static_client:
    """A boto3 client signed with exactly these credentials (through :func:`taskcreds.session`,
    so the region resolution is the shared one), closed on exit."""

    def __init__(
        self,
        service: str,
        credentials: Credentials,
        region: str | None,
        environ: Mapping[str, str],
    ) -> None:
        from taskcreds.boto import session

        self._provider = _static_provider(credentials)
        boto_session: Any = session(
            provider=self._provider, region_name=region, environ=_signing_environ(environ)
        )
        self._client: Any = boto_session.client(service)

    def __enter__(self) -> Any:
        return self._client

    def __exit__(self, *exc: object) -> None:
        self._client.close()
        self._provider.close()
