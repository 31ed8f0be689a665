"""One P2 latency client: ``python -m bench._p2_latency_worker PORT TOKEN_FILE RATE SECONDS``.

Sends ``GET /v1/credentials`` to the broker on 127.0.0.1:PORT over one keep-alive connection at
RATE requests/s (paced on a schedule, so a slow answer is not hidden by sending less), after a
``go`` line on stdin, and prints the latencies in microseconds as one JSON list.
"""

from __future__ import annotations

import http.client
import json
import sys
import time


def main() -> int:
    port, token_file, rate, seconds = (
        sys.argv[1],
        sys.argv[2],
        float(sys.argv[3]),
        float(sys.argv[4]),
    )
    with open(token_file, encoding="ascii") as handle:
        token = handle.read()
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
    headers = {"Authorization": token}
    connection.request("GET", "/v1/credentials", headers=headers)  # connect, warm up
    connection.getresponse().read()
    print("ready", flush=True)
    if not sys.stdin.readline():
        return 1
    latencies: list[int] = []
    interval = 1.0 / rate
    start = time.perf_counter()
    count = int(rate * seconds)
    for index in range(count):
        due = start + index * interval
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        began = time.perf_counter()
        connection.request("GET", "/v1/credentials", headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(int((time.perf_counter() - began) * 1e6))
        if response.status != 200:
            raise SystemExit(f"the broker answered {response.status}")
    connection.close()
    print(json.dumps(latencies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
