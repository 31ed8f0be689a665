"""The P2 broker benchmark runs at a tiny size, so it cannot rot unnoticed (shape only)."""

from __future__ import annotations

from bench import BENCHMARKS, p2_broker
from bench.__main__ import render_table


def test_p2_is_the_broker_figure() -> None:
    assert BENCHMARKS["P2"] == "bench.p2_broker"


def test_p2_broker_tiny() -> None:
    outcome = p2_broker.measure(
        counts=(1, 2),
        threads=1,
        lifetime=2.0,
        lifetimes=1,
        latency_seconds=0.5,
        latency_rate=200.0,
        latency_clients=2,
        latency_rounds=1,
    )
    assert outcome["id"] == "P2"
    # Per N one load row; the 429s; latency and CPU per request, from 1 and from 2 clients.
    assert len(outcome["rows"]) == 2 + 1 + 4
    assert all(isinstance(item["met"], bool) for item in outcome["rows"])
    for key in ("broker-1", "ours-2", "botocore-2"):
        assert outcome["details"]["loads"][key]["upstream_requests"] > 0
    for server in ("broker", "floor"):  # the same clients measure the floor server
        assert outcome["details"]["latency"][server]["requests"] == 100
        assert outcome["details"]["latency_spread"][server]["requests"] == 100
    assert "| P2 |" in render_table({"P2": outcome})
