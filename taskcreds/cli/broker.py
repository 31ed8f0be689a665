"""``taskcreds broker``: the task credentials broker on its own (a sidecar, a supervisor).

``taskcreds broker [--listen HOST:PORT] [--env-file PATH]`` fetches once from the task's
endpoint, serves the whole task over loopback, writes the two client variables to
``--env-file`` (shell-sourceable, mode 0600) and prints them on stdout once ready; logs go to
stderr; SIGTERM or SIGINT stops it (exit 0). ``taskcreds broker --stats [URL]`` prints a running
broker's statistics (the token from ``--token-file`` or ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``).

Exit codes: 0 stopped by a signal, or stats printed; 1 usage; 2 configuration (not in a
container, a non-loopback --listen without --allow-non-loopback, a token file that cannot be
read, the broker refused the token); 3 upstream (or the broker, for --stats) unreachable; 4
upstream HTTP error (incl. 429); 5 malformed response; 6 credentials expired.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import signal
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from taskcreds import environment
from taskcreds.cli._common import EXIT_OK, Output
from taskcreds.errors import (
    ConfigError,
    EndpointHTTPError,
    EndpointUnreachableError,
    MalformedResponseError,
    TokenError,
)

NAME = "broker"
HELP = "serve the task role's credentials to every process of the task over loopback"
EXAMPLE = "python -m taskcreds broker --listen 127.0.0.1:8111 --env-file /shared/taskcreds.env"

_STATS_TIMEOUT = 5.0
_MAX_STATS_BYTES = 4 * 1024 * 1024


def listen_address(text: str) -> tuple[str, int]:
    """argparse type for ``--listen``: ``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT``."""
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise argparse.ArgumentTypeError(f"write an IPv6 address in brackets: [{text}]:PORT")
    if not port_text:
        port = 0
    elif port_text.isdigit() and int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise argparse.ArgumentTypeError(f"not a port number: {port_text!r}")
    return host or "127.0.0.1", port


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="where to listen (default 127.0.0.1:0, a free port); loopback only unless "
        "--allow-non-loopback",
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow a --listen address other than loopback (warns: anyone who can reach it "
        "and read the token can get the credentials)",
    )
    parser.add_argument(
        "--token-dir",
        metavar="DIR",
        help="where the broker's private token directory is made (default: the temp dir; a "
        "volume shared with the app containers for a sidecar)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser)
    parser.add_argument(
        "--unix-socket",
        metavar="PATH",
        help="listen on this Unix-domain socket instead of TCP (clients that speak HTTP over "
        "it; the stats then name each client by PID)",
    )
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help="write the client variables here (shell-sourceable, mode 0600), once ready",
    )
    parser.add_argument(
        "--stats",
        nargs="?",
        const="",
        metavar="URL",
        help="print a running broker's statistics and exit (URL: its credentials or base URL; "
        "default: AWS_CONTAINER_CREDENTIALS_FULL_URI)",
    )
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help="with --stats: the broker's token file (default: "
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)",
    )


def run(args: argparse.Namespace, output: Output) -> int:
    if args.stats is not None:
        return _print_stats(args, output)
    from taskcreds.broker import Broker

    host, port = args.listen
    broker = Broker(
        host=host,
        port=port,
        unix_socket=args.unix_socket,
        allow_non_loopback=args.allow_non_loopback,
        token_dir=args.token_dir,
    )
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGTERM, signal.SIGINT)}
    env_file = Path(args.env_file) if args.env_file else None
    try:
        broker.start()
        variables = (
            {environment.FULL_URI: broker.url, environment.AUTH_TOKEN_FILE: broker.token_file}
            if broker.unix_socket is None
            else {
                "TASKCREDS_BROKER_URL": broker.url,
                environment.AUTH_TOKEN_FILE: broker.token_file,
            }
        )
        if env_file is not None:
            _write_env_file(env_file, variables)
        if output.json_mode:
            output.document(
                {
                    "ok": True,
                    "url": broker.url,
                    "stats_url": broker.stats_url,
                    "environment": variables,
                    "env_file": str(env_file) if env_file else None,
                    "pid": os.getpid(),
                }
            )
        else:
            for name, value in variables.items():
                output.line(f"export {name}={shlex.quote(value)}")
        output.out.flush()
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        broker.close()
        if env_file is not None:
            env_file.unlink(missing_ok=True)  # it named a token file that is gone now
    return EXIT_OK


def _write_env_file(path: Path, variables: Mapping[str, str]) -> None:
    text = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())
    descriptor, scratch = tempfile.mkstemp(prefix=".taskcreds-env-", dir=path.parent or ".")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


# -- --stats ---------------------------------------------------------------------------------


def _print_stats(args: argparse.Namespace, output: Output) -> int:
    url = args.stats or os.environ.get(environment.FULL_URI, "")
    if not url:
        raise ConfigError(
            "no broker URL: pass --stats URL or set AWS_CONTAINER_CREDENTIALS_FULL_URI",
            hint="the URL the broker printed (AWS_CONTAINER_CREDENTIALS_FULL_URI=...)",
        )
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or ""
    if parts.scheme != "http" or not _is_loopback(host):
        raise ConfigError(
            f"--stats asks only a broker on loopback over http, not {url!r}",
            hint="run it in the task (or container) where the broker runs",
        )
    token_file = args.token_file or os.environ.get(environment.AUTH_TOKEN_FILE)
    if not token_file:
        raise TokenError(
            "no token file: pass --token-file or set AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            source="--token-file",
        )
    try:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenError(
            f"cannot read the token file: {exc.strerror or exc}", source=token_file
        ) from None
    stats_url = f"http://{parts.netloc}/stats"
    status, body = _get(host, parts.port or 80, token, stats_url)
    if status in (401, 403):
        raise TokenError(
            f"the broker refused the token (HTTP {status}): the token file is not this broker's",
            source=token_file,
            hint="a restarted broker writes a new token file; use the one it printed",
        )
    if status != 200:
        raise EndpointHTTPError(
            f"the broker answered HTTP {status} to /stats",
            url=stats_url,
            status=status,
            code=None,
            detail=body[:200].decode("utf-8", "replace"),
        )
    try:
        stats: dict[str, Any] = json.loads(body)
    except ValueError:
        raise MalformedResponseError("the broker's /stats is not JSON", url=stats_url) from None
    if output.json_mode:
        output.document(stats)
    else:
        _stats_table(stats, output)
    return EXIT_OK


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _get(host: str, port: int, token: str, url: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=_STATS_TIMEOUT)
    try:
        connection.request("GET", "/stats", headers={"Authorization": token})
        response = connection.getresponse()
        return response.status, response.read(_MAX_STATS_BYTES)
    except OSError as exc:
        raise EndpointUnreachableError(
            f"cannot reach the broker: {exc.strerror or exc}",
            url=url,
            reason="refused" if isinstance(exc, ConnectionRefusedError) else "other",
        ) from None
    finally:
        connection.close()


def _stats_table(stats: Mapping[str, Any], output: Output) -> None:
    output.line(f"broker     {stats['url']}  (up {stats['uptime_seconds']:.0f} s)")
    served = stats.get("credentials")
    if served:
        output.line(
            f"serving    {served['access_key_id']}  {served.get('role_arn') or '-'}  expires "
            f"{served['expiration']} (in {served['seconds_left']:.0f} s)"
        )
    else:
        output.line("serving    nothing: no valid credentials (clients get 503)")
    upstream = stats["upstream"]
    output.line(
        f"upstream   {upstream['source']}: {upstream['fetches']} fetches, "
        f"{upstream['failures']} failed, last error: {upstream['last_error'] or '-'}"
    )
    statuses = ", ".join(f"{code}: {n}" for code, n in stats["statuses"].items()) or "-"
    output.line(
        f"requests   {stats['requests']} ({statuses}); {stats['served_from_cache']} from cache, "
        f"{stats['waited_for_upstream']} waited, {stats['unavailable']} unavailable"
    )
    output.line("")
    output.line(f"{'CLIENT':<22} {'PROCESS':<16} {'REQUESTS':>9} {'SERVED':>8} {'REFUSED':>8}")
    for client in stats["clients"]:
        output.line(
            f"{client['client']:<22} {client.get('name') or '-':<16} {client['requests']:>9} "
            f"{client['served']:>8} {client['refused']:>8}"
        )
    output.line("")
    output.line(f"{'USER AGENT':<70} {'REQUESTS':>9}")
    for agent, count in stats["user_agents"].items():
        output.line(f"{agent[:70]:<70} {count:>9}")
