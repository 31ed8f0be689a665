"""The SDK behind a user agent: ``Boto3/1.43.11 md/Botocore#1.43.11 ...`` is ``boto3 1.43.11``."""

from __future__ import annotations

from dataclasses import dataclass

from taskcreds.audit._parse import EMPTY

__all__ = ["UserAgent", "parse_user_agent"]


@dataclass(frozen=True, order=True)
class UserAgent:
    """The SDK behind a user agent: a known family and its version, or the raw product token."""

    family: str
    version: str | None = None

    def __str__(self) -> str:
        return self.family if self.version is None else f"{self.family} {self.version}"


# Product names (lower case) of the AWS SDKs and tools, and the family each belongs to.
_FAMILIES = {
    "boto3": "boto3",
    "botocore": "botocore",
    "aws-cli": "aws-cli",
    "aws-sdk-go-v2": "aws-sdk-go-v2",
    "aws-sdk-go": "aws-sdk-go",
    "aws-sdk-java": "aws-sdk-java",
    "aws-sdk-js": "aws-sdk-js",
    "aws-sdk-nodejs": "aws-sdk-js",
    "aws-sdk-rust": "aws-sdk-rust",
    "aws-sdk-dotnet-coreclr": "aws-sdk-dotnet",
    "aws-sdk-dotnet-45": "aws-sdk-dotnet",
    "aws-sdk-dotnet": "aws-sdk-dotnet",
    "aws-sdk-php": "aws-sdk-php",
    "aws-sdk-ruby3": "aws-sdk-ruby",
    "aws-sdk-ruby2": "aws-sdk-ruby",
    "aws-sdk-ruby": "aws-sdk-ruby",
    "aws-sdk-cpp": "aws-sdk-cpp",
    "aws-sdk-kotlin": "aws-sdk-kotlin",
    "aws-sdk-swift": "aws-sdk-swift",
    "taskcreds": "taskcreds",
}


def parse_user_agent(user_agent: str | None) -> UserAgent:
    """The SDK family and version, from the first ``name/version`` token naming a known SDK.

    ``Boto3/1.43.11 md/Botocore#1.43.11 ...`` is ``boto3 1.43.11``; an unknown agent is its first
    product token (``curl/8.5.0``) with no version; a missing one is ``-``.
    """
    if not user_agent or user_agent == EMPTY:
        return UserAgent(EMPTY)
    tokens = user_agent.split()
    if not tokens:
        return UserAgent(EMPTY)
    for token in tokens:
        name, slash, version = token.partition("/")
        family = _FAMILIES.get(name.lower())
        if family is not None and slash and version:
            return UserAgent(family, version)
    return UserAgent(tokens[0])
