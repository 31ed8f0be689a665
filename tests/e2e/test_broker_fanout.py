"""The broker in an ECS task's view: a private network namespace where 169.254.170.2:80 is an
agent that throttles as the real one does (40 requests/s, burst 60) and hands out 6-second sets.

``taskcreds exec -- python _broker_fanout.py``: 16 processes × 8 threads of plain botocore ask
for credentials continuously for 10 lifetimes. With only the broker asking the agent: no 429,
at most 1.5 upstream fetches per lifetime, and every client always holds an unexpired set.
(Without the broker the same load gets thousands of 429s: ``bench`` P2 measures it.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import in_container, python

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("netns")]

ID = "5a6b7c8d-0000-4000-8000-00000000b0b0"
LIFETIME = 6.0
LIFETIMES = 10
FANOUT = str(Path(__file__).with_name("_broker_fanout.py"))


def test_fanout_through_the_broker_never_throttles() -> None:
    plan = {
        "endpoint": {
            "kind": "agent",
            "credentials_id": ID,
            "lifetime": LIFETIME,
            "faults": {"throttle_rps": 40.0, "throttle_burst": 60},
        },
        "commands": [
            {
                "argv": python(
                    "exec",
                    "--",
                    "{python}",
                    FANOUT,
                    "--processes",
                    "16",
                    "--threads",
                    "8",
                    "--duration",
                    str(LIFETIME * LIFETIMES),
                    "--pause",
                    "0.015",
                ),
                "env": {
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": f"/v2/credentials/{ID}",
                    "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                    "AWS_EC2_METADATA_DISABLED": "true",
                },
                "timeout": 150,
            }
        ],
    }
    report = in_container(plan, timeout=170)
    run = report["runs"][0]
    assert run["code"] == 0, run["stderr"][-3000:]
    result = json.loads(run["stdout"].strip().splitlines()[-1])
    statuses = [request["status"] for request in report["requests"]]
    print(  # shown with -s: the figures docs/broker.md quotes
        f"agent requests {len(statuses)}, calls {result['calls']}, sets {result['sets']}, "
        f"least time left on a held set {result['min_left']:.2f} s"
    )
    assert statuses.count(429) == 0
    assert all(status == 200 for status in statuses), statuses
    # every request the agent saw was the broker's, first fetch included
    assert len(statuses) <= 1.5 * LIFETIMES, len(statuses)
    assert result["failed_workers"] == 0
    calls = result["calls"]
    assert set(calls) == {"ok"}, calls  # no error, no expired set, ever
    assert calls["ok"] > 16 * 8 * 50
    assert result["min_left"] > 0
    assert result["sets"] >= LIFETIMES  # the clients followed every rotation
