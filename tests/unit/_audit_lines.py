"""Audit lines in the agent's documented format, for the tests of taskcreds.audit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from taskcreds.audit import AuditSummary

ACCOUNT = "123456789012"
TASK_A = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TASK_B = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/prod/5a6b7c8d9e0f11223344556677889900"
INSTANCE = (
    f"arn:aws:ecs:us-east-1:{ACCOUNT}:container-instance/prod/9a8b7c6d5e4f30211203f4e5d6c7b8a9"
)
BOTO = (
    "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.0 os/linux#5.10.228 md/arch#x86_64 lang/python#3.12.7"
)
GO = "aws-sdk-go-v2/1.30.0 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64"
UTC = timezone.utc
T0 = datetime(2026, 11, 29, 21, 0, 0, tzinfo=UTC)


def at(minutes: float = 0.0) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def line(
    time: str,
    *,
    status: int = 200,
    client: str = "172.17.0.3:41234",
    agent: str = BOTO,
    task: str = TASK_A,
    event: str = "GetCredentials",
    cluster: str = "prod",
    instance: str = INSTANCE,
) -> str:
    return (
        f'{time} {status} {client} "/v2/credentials" "{agent}" {task} {event} 2 {cluster} '
        f"{instance}\n"
    )


def error_line(
    time: str, status: int = 429, client: str = "172.17.0.3:41240", rest: str = "-"
) -> str:
    return f'{time} {status} {client} "/v2/credentials" "{BOTO}" {rest}\n'.replace("  \n", "\n")


def summary_of(lines: list[str], **filters: object) -> AuditSummary:
    summary = AuditSummary(**filters)  # type: ignore[arg-type]
    summary.add_lines(lines, "test.log")
    return summary


def many(count: int, every_seconds: float, task: str = TASK_A) -> list[str]:
    return [line(at(n * every_seconds / 60), task=task) for n in range(count)]
