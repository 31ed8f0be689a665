"""taskcreds.audit._agents: the SDK family and version behind a user agent.

Every log here is written in the agent's documented format (docs/agent-contract.md, "The audit log").
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskcreds.audit import UserAgent, parse_user_agent

from ._audit_lines import BOTO, GO

# -- user agents ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (BOTO, UserAgent("boto3", "1.43.11")),
        ("Botocore/1.34.0 ua/2.0 os/linux", UserAgent("botocore", "1.34.0")),
        (GO, UserAgent("aws-sdk-go-v2", "1.30.0")),
        ("aws-sdk-go/1.44.0 (go1.21; linux; amd64)", UserAgent("aws-sdk-go", "1.44.0")),
        (
            "aws-sdk-java/2.25.60 Linux/5.10 OpenJDK_64-Bit_Server_VM/17",
            UserAgent("aws-sdk-java", "2.25.60"),
        ),
        ("aws-sdk-js/3.600.0 ua/2.1 os/linux lang/js", UserAgent("aws-sdk-js", "3.600.0")),
        ("aws-sdk-nodejs/2.1500.0 linux/v18.0.0", UserAgent("aws-sdk-js", "2.1500.0")),
        ("aws-cli/2.17.0 md/awscrt#0.20.11 ua/2.0", UserAgent("aws-cli", "2.17.0")),
        ("aws-cli/1.32.0 Python/3.11 Linux/5.10 botocore/1.34.0", UserAgent("aws-cli", "1.32.0")),
        ("taskcreds/0.1.0", UserAgent("taskcreds", "0.1.0")),
        ("my-app/4.2 Boto3/1.35.0 md/Botocore#1.35.0", UserAgent("boto3", "1.35.0")),
        ("python-requests/2.31.0", UserAgent("python-requests/2.31.0")),
        ("curl/8.5.0", UserAgent("curl/8.5.0")),
        ("Mozilla/5.0 (X11; Linux x86_64)", UserAgent("Mozilla/5.0")),
        ("-", UserAgent("-")),
        ("", UserAgent("-")),
        ("   ", UserAgent("-")),
        (None, UserAgent("-")),
    ],
)
def test_user_agents(agent: str | None, expected: UserAgent) -> None:
    assert parse_user_agent(agent) == expected


def test_user_agent_text() -> None:
    assert str(UserAgent("boto3", "1.43.11")) == "boto3 1.43.11"
    assert str(UserAgent("curl/8.5.0")) == "curl/8.5.0"


@given(st.text(max_size=200))
def test_any_user_agent_gives_a_family(agent: str) -> None:
    assert parse_user_agent(agent).family
