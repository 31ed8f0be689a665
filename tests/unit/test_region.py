"""One region resolution: argument, AWS_REGION, AWS_DEFAULT_REGION, then boto3's configuration."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcreds import ConfigError
from taskcreds._region import checked_region, region_from_environment


@pytest.mark.parametrize(
    ("argument", "environ", "expected"),
    [
        (None, {"AWS_REGION": "eu-west-1"}, ("eu-west-1", "AWS_REGION")),
        (None, {"AWS_DEFAULT_REGION": "eu-west-2"}, ("eu-west-2", "AWS_DEFAULT_REGION")),
        (
            None,
            {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"},
            ("eu-west-1", "AWS_REGION"),
        ),
        ("ap-south-1", {"AWS_REGION": "eu-west-1"}, ("ap-south-1", "region_name")),
        (None, {}, (None, None)),
        (None, {"AWS_REGION": ""}, (None, None)),
    ],
)
def test_order(
    argument: str | None, environ: dict[str, str], expected: tuple[str | None, str | None]
) -> None:
    assert region_from_environment(argument, environ) == expected


@pytest.mark.parametrize("value", ["us east 1", "eu-west-1\n", "-eu", "eu-", "a" * 64, "eu/west"])
def test_malformed_region_names_where_it_came_from(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        region_from_environment(None, {"AWS_REGION": value})
    assert "AWS_REGION" in str(info.value)
    assert "not a region name" in str(info.value)


@given(st.text(max_size=70))
def test_checked_region_accepts_only_what_botocore_accepts(value: str) -> None:
    from botocore.exceptions import InvalidRegionError
    from botocore.utils import validate_region_name

    try:
        checked_region(value, "AWS_REGION")
    except ConfigError:
        ours = False
    else:
        ours = True
    try:
        validate_region_name(value)
    except InvalidRegionError:
        theirs = False
    else:
        theirs = bool(value)
    if ours:
        assert theirs, value
