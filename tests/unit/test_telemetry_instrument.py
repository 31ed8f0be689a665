"""telemetry.instrument() without opentelemetry-api: the extra is named, nothing else breaks.

Runs in `make test-min` too, where opentelemetry is not installed at all; here the import is made
to fail. The metrics themselves are tested against the real SDK in
tests/integration/test_telemetry_otel.py.
"""

from __future__ import annotations

import sys

import pytest

from taskcreds import ConfigError, telemetry
from taskcreds.errors import DependencyMissingError


def test_instrument_without_opentelemetry_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes `import opentelemetry...` fail, as when it is not installed.
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.metrics", None)
    with pytest.raises(DependencyMissingError) as raised:
        telemetry.instrument()
    error = raised.value
    assert isinstance(error, ConfigError)
    assert error.extra == "otel"
    assert error.hint == "pip install 'taskcreds[otel]'"
    assert "pip install 'taskcreds[otel]'" in str(error)
    assert "opentelemetry-api" in str(error)
    assert isinstance(error.__cause__, ImportError)
