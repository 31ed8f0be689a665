"""Generate ECS agent credential audit logs, in the format of shared/CONTRACT.md, for P7.

``python -m bench._auditlog OUT LINES [--seed N]`` writes LINES lines to OUT. The content is
seeded (the same seed, the same file) and shaped like a busy container instance: a few clusters,
a few hundred tasks, several SDK user agents, mostly ``200 … GetCredentials``, some execution-role
fetches, some ``429`` lines (task ARN ``-``, trailing fields missing, as the agent writes them),
some other errors, and now and then fractional seconds in the time::

    2026-11-29T21:04:05Z 200 172.17.0.3:41234 "/v2/credentials" "Boto3/1.43.11 ..." arn:aws:ecs:…:task/prod/0f1e… GetCredentials 2 prod arn:aws:ecs:…:container-instance/prod/9a8b…
"""  # noqa: E501

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

__all__ = ["generate", "lines"]

_ACCOUNT = "123456789012"
_REGION = "us-east-1"
_CLUSTERS = ("prod", "staging", "batch")
_USER_AGENTS = (
    "Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.1 md/arch#x86_64 lang/python#3.12.7",
    "aws-sdk-go-v2/1.36.3 ua/2.1 os/linux lang/go#1.24.2 md/GOOS#linux md/GOARCH#amd64",
    "aws-sdk-java/2.31.20 ua/2.1 os/Linux#6.1 lang/java#21.0.6 md/OpenJDK_64-Bit_Server_VM",
    "aws-sdk-js/3.787.0 ua/2.1 os/linux#6.1 lang/js md/nodejs#22.14.0 api/sts#3.787.0",
    "taskcreds/0.1.0 python/3.12.7",
    "aws-cli/2.27.3 md/awscrt#0.26.1 ua/2.1 os/linux#6.1 md/arch#x86_64 lang/python#3.13.2",
    "-",
)
_TASKS = 300
_PER_SECOND = 20  # lines per second of log time, on average


def _arn(kind: str, cluster: str, rng: random.Random) -> str:
    return f"arn:aws:ecs:{_REGION}:{_ACCOUNT}:{kind}/{cluster}/{rng.getrandbits(128):032x}"


def lines(count: int, *, seed: int = 7) -> Iterator[str]:
    """``count`` audit lines, each ending with a newline."""
    rng = random.Random(seed)
    instances = {cluster: _arn("container-instance", cluster, rng) for cluster in _CLUSTERS}
    tasks = []
    for _ in range(_TASKS):
        cluster = rng.choice(_CLUSTERS)
        address = f"172.17.{rng.randrange(256)}.{rng.randrange(2, 255)}"
        agent = rng.choice(_USER_AGENTS)
        arn = _arn("task", cluster, rng)
        ok = f'"/v2/credentials" "{agent}" {arn} %s 2 {cluster} {instances[cluster]}\n'
        throttled = f'"/v2/credentials" "{agent}" - GetCredentials 2\n'
        failed = f'"/v2/credentials" "{agent}" - GetCredentials 2 {cluster} -\n'
        tasks.append((address, ok, throttled, failed))
    moment = datetime(2026, 11, 29, tzinfo=timezone.utc)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    second = timedelta(seconds=1)
    for _ in range(count):
        if rng.random() < 1 / _PER_SECOND:
            moment += second
            stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        address, ok, throttled, failed = tasks[int(rng.random() ** 2 * _TASKS)]  # a few busy
        time_text = stamp if rng.random() < 0.98 else f"{stamp[:-1]}.{rng.randrange(10**6):06d}Z"
        client = f"{address}:{rng.randrange(32768, 61000)}"
        draw = rng.random()
        if draw < 0.93:
            yield f"{time_text} 200 {client} {ok % 'GetCredentials'}"
        elif draw < 0.975:
            yield f"{time_text} 200 {client} {ok % 'GetCredentialsExecutionRole'}"
        elif draw < 0.993:
            yield f"{time_text} 429 {client} {throttled}"
        else:
            status = rng.choice((400, 400, 500, 503))
            yield f"{time_text} {status} {client} {failed}"


def generate(path: Path, count: int, *, seed: int = 7) -> Path:
    """Write ``count`` lines to ``path``."""
    batch: list[str] = []
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for line in lines(count, seed=seed):
            batch.append(line)
            if len(batch) == 10_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._auditlog")
    parser.add_argument("out", type=Path)
    parser.add_argument("lines", type=int)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    generate(args.out, args.lines, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
