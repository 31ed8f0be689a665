"""P2's latency part: the broker's time per request at ~2,000 requests/s, beside a floor.

Client processes (``bench._p2_latency_worker``, http.client on one keep-alive connection each,
paced on a schedule) send ``GET /v1/credentials`` at ``rate`` requests/s in all. The same
clients, in the same run and in interleaved rounds, also measure a **floor**: a server on raw
sockets that answers every request with fixed bytes, without parsing it. The floor is what this
machine, its scheduler and the client's own HTTP stack cost; on a shared 2-vCPU VM most of a
p99 is that (the hypervisor's steal time during the run is reported beside it).

Reported per server: p50/p90/p99/max (client-measured), and the serving process's CPU per
request (``getrusage`` over the timed window: the broker's threads, the clients are apart).
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._common import PYTHON, REPO, child_env, median, temp_dir
from bench.p2_endpoint_load import _wait_ready

SERVERS = ("broker", "floor")


def measure_latency(
    *, rate: float, seconds: float, clients: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """Median over ``rounds`` interleaved rounds of each server's figures."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
    for _ in range(rounds):
        for name in SERVERS:
            with _server(name) as (port, token_file):
                runs[name].append(_one_run(port, token_file, rate, seconds, clients))
    return {name: _median_of(found) for name, found in runs.items()}


@contextlib.contextmanager
def _server(name: str) -> Iterator[tuple[int, str]]:
    if name == "broker":
        from taskcreds.broker import Broker
        from taskcreds.local import AgentServer, RotatingSource

        with (
            AgentServer(RotatingSource(lifetime=3600)) as upstream,
            Broker(environ=upstream.environment()) as broker,
        ):
            yield broker.port, broker.token_file
        return
    with temp_dir("p2lat") as work, _FixedServer() as floor:
        token_file = work / "token"
        token_file.write_text("unused", encoding="ascii")
        yield floor.port, str(token_file)


class _FixedServer:
    """A thread per connection; every ``recv`` is answered with the same bytes, unparsed."""

    def __init__(self) -> None:
        body = json.dumps({"AccessKeyId": "ASIA" + "X" * 16, "Padding": "x" * 900}).encode()
        self._answer = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._connections: list[socket.socket] = []

    def __enter__(self) -> _FixedServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._listener.close()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while connection.recv(65536):
                connection.sendall(self._answer)


def _one_run(
    port: int, token_file: str, rate: float, seconds: float, clients: int
) -> dict[str, Any]:
    command = [
        PYTHON,
        "-m",
        "bench._p2_latency_worker",
        str(port),
        token_file,
        str(rate / clients),
        str(seconds),
    ]
    workers = [
        subprocess.Popen(
            command, cwd=REPO, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for _ in range(clients)
    ]
    try:
        _wait_ready(workers, time.monotonic() + 60)
        cpu_before, jiffies_before = _cpu_seconds(), _jiffies()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(b"go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=seconds + 60)[0] for worker in workers]
        cpu, jiffies = _cpu_seconds() - cpu_before, _jiffies()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    if any(worker.returncode != 0 for worker in workers):
        raise RuntimeError("a P2 latency client failed")
    latencies = sorted(us for out in outputs for us in json.loads(out))

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000.0

    return {
        "requests": len(latencies),
        "achieved_rate": len(latencies) / seconds,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] / 1000.0,
        "server_cpu_us_per_request": cpu / len(latencies) * 1e6,
        # The share of the machine's CPU time the hypervisor took while the clients ran.
        "steal_fraction": (jiffies[0] - jiffies_before[0]) / max(jiffies[1] - jiffies_before[1], 1),
    }


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    figures = {key: median([run[key] for run in runs]) for key in runs[0]}
    figures["p99_runs_ms"] = [run["p99_ms"] for run in runs]
    return figures


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _jiffies() -> tuple[int, int]:
    """(steal, all) CPU time of the machine so far, from /proc/stat (user nice system idle
    iowait irq softirq steal); (0, 0) where there is none."""
    try:
        first = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0]
    except OSError:
        return 0, 0
    values = [int(value) for value in first.split()[1:9]]
    return (values[7] if len(values) > 7 else 0), sum(values)
