"""The one region resolution every part of taskcreds uses: the session, the uploader, doctor.

botocore reads ``AWS_DEFAULT_REGION`` and the config file but not ``AWS_REGION``, which the other
AWS SDKs (and ECS task definitions, and EKS Pod Identity) use; so with only ``AWS_REGION`` set a
plain boto3 client would go to ``us-east-1``. The order here is the argument, then ``AWS_REGION``,
then ``AWS_DEFAULT_REGION``, then boto3's own configuration (a profile's ``region``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from taskcreds import environment as env
from taskcreds.errors import ConfigError

__all__ = ["checked_region", "region_from_environment"]

# What botocore accepts as a region name (``validate_region_name``), anchored at both ends.
_REGION = re.compile(r"(?![0-9]+\Z)[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")


def region_from_environment(
    region_name: str | None = None, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """``(region, where it came from)`` from the argument or the variables, without boto3.

    ``(None, None)`` when none is set: boto3's configuration decides then. A malformed value
    raises :class:`ConfigError` naming where it came from.
    """
    environ = os.environ if environ is None else environ
    candidates = (
        ("region_name", region_name),
        (env.REGION, environ.get(env.REGION)),
        (env.DEFAULT_REGION, environ.get(env.DEFAULT_REGION)),
    )
    for where, value in candidates:
        if value:
            return checked_region(value, where), where
    return None, None


def checked_region(value: str, where: str) -> str:
    """``value`` if it is a well-formed region name, else :class:`ConfigError` naming ``where``."""
    if _REGION.fullmatch(value) is None:
        raise ConfigError(
            f"{where}={value!r} is not a region name",
            hint="regions look like eu-west-1: lowercase letters, digits and dashes, no spaces",
        )
    return value
