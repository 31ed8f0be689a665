"""Reading the ``Authorization`` token: the file bounded and never blocking, the value checked."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from taskcreds import environment as env
from taskcreds.errors import TokenError

if TYPE_CHECKING:
    from taskcreds.endpoint import TokenSource

#: A Pod Identity token (a JWT) is about 1 KiB; a bigger file is not a token.
MAX_TOKEN_FILE_BYTES = 16 * 1024


def read_token_file(path: str) -> str:
    """The file's text, refusing what could block (a FIFO) or grow without end (``/dev/zero``)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TokenError(
            f"cannot read the authorization token file {path}: {exc.strerror}",
            source=path,
            hint=f"check that the file {env.AUTH_TOKEN_FILE} names is mounted and readable",
        ) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TokenError(
                f"the authorization token file {path} is not a regular file",
                source=path,
                hint=f"{env.AUTH_TOKEN_FILE} must name the token file itself (EKS mounts one)",
            )
        data = os.read(fd, MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise TokenError(
            f"cannot read the authorization token file {path}: {exc.strerror}",
            source=path,
        ) from exc
    finally:
        os.close(fd)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise TokenError(
            f"the authorization token file {path} is larger than "
            f"{MAX_TOKEN_FILE_BYTES // 1024} KiB, which no token is",
            source=path,
            hint=f"check that {env.AUTH_TOKEN_FILE} names the token file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenError(
            f"the authorization token file {path} is not UTF-8 text", source=path
        ) from exc


def checked_token(token: str, source: TokenSource) -> str:
    if "\r" in token or "\n" in token:
        raise TokenError(
            f"the authorization token from {source} contains a line break, which would inject "
            "HTTP headers",
            source=source.name,
            hint="the token must be one line; a file may end with one newline",
        )
    if not token:
        raise TokenError(
            f"the authorization token from {source} is empty",
            source=source.name,
            hint="EKS Pod Identity mounts the token file; check the pod's service account",
        )
    if token != token.strip() or any(not 0x20 <= ord(ch) <= 0x7E for ch in token):
        raise TokenError(
            f"the authorization token from {source} has leading or trailing spaces or characters "
            "that cannot be sent in an HTTP header",
            source=source.name,
            hint="the token must be printable ASCII (EKS tokens are JWTs)",
        )
    return token
