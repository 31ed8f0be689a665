"""P8 (bench/p8_aio_lag.py) runs end to end in the aio venv and its result has the shape of every
benchmark's; its figures are not judged here (they are the benchmark's, not the test suite's)."""

from __future__ import annotations

from bench import p8_aio_lag
from tests.integration.test_bench_smoke import check_result


def test_p8_loop_lag() -> None:
    outcome = p8_aio_lag.measure(calls=1000, rounds=1)
    check_result(outcome, "P8", rows=1)
    # One fetch for every one of the 1,000 coroutines, for taskcreds.
    assert outcome["details"]["endpoint_requests"]["ours"] == [1]
