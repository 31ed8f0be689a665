"""The S3 side of P4–P6: a local SeaweedFS, AppA's STS session, and one upload per child process.

All three clients sign with the same real STS session credentials of role ``AppA`` (bucket
``app-a``): taskcreds gets them from a local credentials endpoint (``AgentServer`` serving them,
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` in its environment), boto3 and the aws CLI from
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``.

Each upload runs in its own process (``python -m bench._clients ...`` or ``aws s3 cp``) so its
CPU seconds and peak RSS are its own. Alongside, the SeaweedFS process's CPU seconds and how busy
the whole machine was are sampled from ``/proc``: on a 2-core machine the server is usually what
bounds the throughput.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import PYTHON, Measured, child_env, run_measured

if TYPE_CHECKING:
    from taskcreds.credentials import Credentials
    from taskcreds.local import AgentServer
    from taskcreds_demo.seaweed import SeaweedFS

__all__ = ["S3Bench", "Sample", "s3_bench"]

BUCKET = "app-a"
ROLE = "AppA"


@dataclass(frozen=True)
class Sample:
    """One measured upload: the client child's figures, the server's CPU, the machine's load."""

    measured: Measured
    server_cpu: float
    machine_busy: float  # 0..1 over all cores


@dataclass
class S3Bench:
    seaweed: SeaweedFS
    agent: AgentServer
    credentials: Credentials
    bucket: str = BUCKET

    @property
    def endpoint(self) -> str:
        return self.seaweed.s3_endpoint

    def ours_env(self) -> dict[str, str]:
        return child_env({**self.agent.environment(), "AWS_REGION": self.seaweed.region})

    def peer_env(self) -> dict[str, str]:
        return child_env(
            {
                "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
                "AWS_SESSION_TOKEN": self.credentials.token,
                "AWS_REGION": self.seaweed.region,
                "AWS_DEFAULT_REGION": self.seaweed.region,
            }
        )

    def client_cmd(self, command: str, *args: str) -> list[str]:
        """A ``bench._clients`` command line against this bucket and endpoint."""
        return [
            PYTHON, "-m", "bench._clients", command, *args,
            "--bucket", self.bucket, "--endpoint", self.endpoint,
        ]  # fmt: skip

    def measure(self, cmd: Sequence[str], env: dict[str, str], *, timeout: float) -> Sample:
        server_before = _process_cpu(self.seaweed.pid)
        machine_before = _machine_ticks()
        measured = run_measured(cmd, env, timeout=timeout).check(" ".join(cmd[:4]))
        server_cpu = _process_cpu(self.seaweed.pid) - server_before
        busy_after, total_after = _machine_ticks()
        busy = busy_after - machine_before[0]
        total = total_after - machine_before[1]
        return Sample(measured, server_cpu, busy / total if total else 0.0)

    def pin_server(self) -> set[int]:
        """Put every thread of the SeaweedFS process on this machine's last CPU and this process
        (so every client started after) on the others: the CPUs the clients may use. Then the
        server's CPU per object is its own, not shared with a client's."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or self.seaweed.pid is None:
            raise RuntimeError(f"pinning needs 2 CPUs and a running server (have {len(cpus)})")
        server, clients = {cpus[-1]}, set(cpus[:-1])
        for task in Path(f"/proc/{self.seaweed.pid}/task").iterdir():
            # Threads started later inherit the affinity of the thread that starts them.
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(int(task.name), server)
        os.sched_setaffinity(0, clients)
        return clients

    def object_sizes(self, prefix: str) -> dict[str, int]:
        sizes: dict[str, int] = {}
        with contextlib.closing(self.seaweed.admin_client("s3")) as s3:
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    sizes[item["Key"]] = item["Size"]
        return sizes

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.object_sizes(prefix))
        with contextlib.closing(self.seaweed.admin_client("s3")) as s3:
            for start in range(0, len(keys), 1000):
                batch: list[Any] = [{"Key": key} for key in keys[start : start + 1000]]
                s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)


@contextlib.contextmanager
def s3_bench(seaweed: SeaweedFS | None = None) -> Iterator[S3Bench]:
    """A running SeaweedFS (``seaweed``, or one started and stopped here) and the endpoint."""
    from taskcreds.local import AgentServer, StaticSource
    from taskcreds_demo.seaweed import SeaweedFS

    with contextlib.ExitStack() as stack:
        if seaweed is None:
            seaweed = stack.enter_context(SeaweedFS())
        credentials = seaweed.assume_role(ROLE, session_name="taskcreds-bench")
        agent = stack.enter_context(AgentServer(StaticSource(credentials)))
        yield S3Bench(seaweed, agent, credentials)


def summary(samples: Sequence[Sample]) -> dict[str, Any]:
    """Per-run figures kept in the details of the result."""
    return {
        "wall_s": [round(s.measured.wall, 3) for s in samples],
        "client_cpu_s": [round(s.measured.cpu, 3) for s in samples],
        "client_peak_rss_mib": [round(s.measured.maxrss_mib, 1) for s in samples],
        "server_cpu_s": [round(s.server_cpu, 3) for s in samples],
        "machine_busy": [round(s.machine_busy, 3) for s in samples],
    }


_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` so far (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the ")" closing the command name: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return 0, 0
    ticks = [int(value) for value in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return sum(ticks) - idle, sum(ticks)
