"""Requests through the AWS CRT's S3 client (HTTP, signing and retries in C): a small object in
one PutObject (:meth:`CrtPut.put`), and the parts of multipart uploads (:meth:`CrtPut.submit`,
driven by :mod:`._crt_multipart` and, for ``upload_dir``'s small files, :mod:`._crt_batch`).

botocore spends about 2 ms of Python CPU on each request (serializing, some forty event handlers,
SigV4 in Python, parsing the answer); for an 8 KiB object that is nearly all of the cost, and on
Fargate a task pays for it. The CRT (``awscrt``, which ``botocore[crt]`` already installs) does
the same request for a fifth of that (``bench/engines.py``, docs/performance.md). What makes a
taskcreds upload safe stays in Python, before and after the request:

- the key was checked against the bucket and prefix before this module sees it;
- the credentials are the provider's, fetched in the caller's thread for each request (its typed
  error when there are none) and handed to the CRT as a static set: the CRT never looks for
  credentials of its own, in the environment or anywhere else;
- the checksum (CRC32C by default) is computed here and sent in its header, so S3 checks the
  bytes end to end;
- an expired set (``ExpiredToken``...) is refreshed once and the request sent again; an error
  answer becomes botocore's ``ClientError``, so the uploader's one error table (:mod:`._errors`)
  names the refused IAM action as for every other request.

The CRT retries 5xx, ``SlowDown`` and dropped connections itself, with full-jitter backoff, up to
the uploader's ``max_attempts`` (it always makes at least two); a request that has not ended by its
deadline is cancelled. It never splits a request into parts itself (its multipart threshold is S3's
single-PUT limit): taskcreds cuts the parts. A redirect to another region, or a file that grew
since it was measured, is left to botocore (:mod:`._transfer`). The CRT does not say whether it
retried, and a retried conditional write cannot be told from another writer's object without
knowing, so small ``overwrite=False`` writes keep the botocore path (:mod:`._hooks`), where every
attempt is seen; a multipart upload's condition is on its completion, which botocore sends.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

from botocore.exceptions import ClientError

from taskcreds._awserror import error_code_and_message
from taskcreds.provider import CredentialProvider
from taskcreds.upload._checksums import body_checksum
from taskcreds.upload._errors import classify

__all__ = [
    "REDIRECT_CODES",
    "CrtPut",
    "Sent",
    "UploadTransportError",
    "checksum_header",
    "crt_available",
    "fixed_headers",
    "header_list",
    "headers_are_sendable",
    "is_redirect",
]

_ERROR_BODY_LIMIT = 64 * 1024
_CONNECT_TIMEOUT_MS = 60_000  # botocore's connect timeout
#: S3's largest single PutObject.
_SINGLE_PUT_MAX = 5 * 1024**3
#: A request (its retries included) that has not ended after this long, plus a second per
#: 64 KiB of body, is cancelled: a stalled server must not hold an upload forever.
_DEADLINE_SECONDS = 120.0
_DEADLINE_BYTES_PER_SECOND = 64 * 1024
#: The fewest retries the CRT can be told to make.
_MIN_CRT_RETRIES = 1

_HEADER_OF = {
    "ContentType": "Content-Type",
    "Tagging": "x-amz-tagging",
    "StorageClass": "x-amz-storage-class",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
}
#: What ``extra_args`` may hold for this path; anything else goes through botocore.
SUPPORTED_ARGS = frozenset({*_HEADER_OF, "Metadata", "ChecksumAlgorithm"})
#: Answers that mean "ask another region or endpoint": botocore's redirector follows them.
REDIRECT_CODES = frozenset(
    {"PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed", "301", "307"}
)


#: The CRT's errors for an answer it retried and gave up on: S3's code and status.
_RETRIED_OUT = {
    "AWS_ERROR_S3_INTERNAL_ERROR": ("InternalError", 500),
    "AWS_ERROR_S3_SLOW_DOWN": ("SlowDown", 503),
    "AWS_ERROR_S3_REQUEST_TIMEOUT": ("RequestTimeout", 400),
}


def crt_available() -> bool:
    """Whether the awscrt installed here has what this module uses (``S3RetryConfig`` and
    ``create_default_s3_signing_config`` came in awscrt 0.27-0.28; botocore[crt]'s lowest
    versions pull an older one, and then botocore sends everything)."""
    try:
        import awscrt.s3  # type: ignore[import-untyped]
    except ImportError:
        return False
    return all(
        hasattr(awscrt.s3, name)
        for name in ("S3RetryConfig", "create_default_s3_signing_config", "S3Client")
    )


def headers_are_sendable(extra_args: Mapping[str, Any]) -> bool:
    """Whether these arguments fit this path: known names and printable ASCII values (botocore
    encodes anything else its own way, and keeps that path)."""
    if not set(extra_args) <= SUPPORTED_ARGS:
        return False
    values = [str(extra_args[name]) for name in _HEADER_OF if name in extra_args]
    for name, value in (extra_args.get("Metadata") or {}).items():
        values.extend((str(name), str(value)))
    return all(value.isascii() and value.isprintable() for value in values)


@dataclass(slots=True)
class _Answer:
    """What one request came back with."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None
    error_body: bytes = b""


@dataclass(slots=True)
class Sent:
    """One request in flight: its answer once it has ended (``done`` is set, for a request
    whose caller waits on it)."""

    operation: str
    #: Seconds after which a request that has not ended (retries included) is cancelled.
    deadline: float
    answer: _Answer = field(default_factory=_Answer)
    request: Any = None
    done: threading.Event | None = None

    def cancel(self) -> None:
        """Cancel the request and wait until the CRT has let go of it."""
        self.request.cancel()
        if self.done is not None:
            self.done.wait()

    def outcome(self) -> dict[str, Any]:
        """Wait for the answer (cancelling at the deadline): its headers parsed as botocore
        would, or botocore's ``ClientError`` / :class:`UploadTransportError`."""
        assert self.done is not None, "outcome() of a request sent without waitable=True"
        if not self.done.wait(self.deadline):
            self.cancel()
            raise self.timed_out()
        return self.result()

    def timed_out(self) -> UploadTransportError:
        """The error of this request, cancelled at its deadline."""
        return UploadTransportError(TimeoutError(f"no answer from S3 within {self.deadline:.0f} s"))

    def result(self) -> dict[str, Any]:
        """The outcome of a request that has ended."""
        answer = self.answer
        if answer.error is None:
            return _parsed(answer.headers)
        error = _client_error(answer, self.operation) or _retried_out(answer, self.operation)
        if error is None:
            raise UploadTransportError(answer.error)
        raise error


class UploadTransportError(Exception):
    """The CRT gave up without an answer from S3 (after its retries): its error's name."""

    def __init__(self, error: BaseException) -> None:
        name = getattr(error, "name", type(error).__name__)
        message = getattr(error, "message", None) or str(error)
        super().__init__(f"{name}: {message}" if message else str(name))


class CrtPut:
    """PutObject of an in-memory body through one ``awscrt.s3.S3Client``.

    ``endpoint_url`` is the endpoint botocore resolved for the uploader's client (so the CRT goes
    where every other request goes), addressed path-style when ``path_style``, as botocore does.
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        path_style: bool,
        region: str,
        provider: Callable[[], CredentialProvider],
        max_attempts: int,
        refresh: Callable[..., bool],
        ca_bundle: str | None = None,
    ) -> None:
        parts = urlsplit(endpoint_url)
        self._https = parts.scheme == "https"
        self._host = parts.netloc
        self._base_path = parts.path.rstrip("/")
        self._path_style = path_style
        self._region = region
        self._provider = provider
        #: Replaces a set S3 called expired: ``refresh(code, operation=, key=)``, whether to send
        #: again (:meth:`~taskcreds.upload._hooks.RefreshOnExpired.force`). Shared
        #: with the uploader's botocore clients: many refusals at once cost the agent one fetch.
        self.refresh = refresh
        self._lock = threading.Lock()
        self._signing_cache: tuple[str, Any] | None = None
        self._client = self._new_client(max(max_attempts - 1, _MIN_CRT_RETRIES), ca_bundle)

    def _new_client(self, retries: int, ca_bundle: str | None) -> Any:
        from awscrt.auth import AwsCredentialsProvider  # type: ignore[import-untyped]
        from awscrt.io import (  # type: ignore[import-untyped]
            ClientBootstrap,
            ClientTlsContext,
            DefaultHostResolver,
            EventLoopGroup,
            TlsContextOptions,
        )
        from awscrt.s3 import S3Client, S3RequestTlsMode, S3RetryConfig

        loops = EventLoopGroup()
        bootstrap = ClientBootstrap(loops, DefaultHostResolver(loops))
        tls_connection = None
        if self._https and ca_bundle:
            options = TlsContextOptions()
            options.override_default_trust_store_from_path(None, ca_bundle)
            tls_connection = ClientTlsContext(options).new_connection_options()
        return S3Client(
            bootstrap=bootstrap,
            region=self._region,
            signing_config=self._signing_config(
                AwsCredentialsProvider.new_delegate(self._delegate)
            ),
            tls_mode=S3RequestTlsMode.ENABLED if self._https else S3RequestTlsMode.DISABLED,
            tls_connection_options=tls_connection,
            retry_config=S3RetryConfig(max_retries=retries),
            connect_timeout_ms=_CONNECT_TIMEOUT_MS,
            # This client sends single PutObjects only: it must never split one into parts.
            multipart_upload_threshold=_SINGLE_PUT_MAX,
        )

    def put(
        self, *, bucket: str, key: str, body: bytes, extra_args: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PutObject ``body``, replacing any object; the answer as botocore would parse it
        (``ETag``, ``VersionId``, ``Checksum<ALG>``). Raises botocore's ``ClientError`` for an
        error answer and :class:`UploadTransportError` when S3 never answered."""
        algorithm = str(extra_args["ChecksumAlgorithm"])
        headers = header_list(extra_args, algorithm, body_checksum(body, algorithm), len(body))
        try:
            return self._put_once(bucket, key, body, headers)
        except ClientError as exc:
            if not self.refreshed_after(exc, key):
                raise
        return self._put_once(bucket, key, body, headers)

    def refreshed_after(self, error: ClientError, key: str) -> bool:
        """Whether ``error`` (to a request for ``key``) called the credentials expired and a
        fresh set is now in place (the request should be sent again, once)."""
        code = error_code_and_message(error)[0]
        if classify(code) != "expired":
            return False
        return self.refresh(code, operation=error.operation_name, key=key)

    def _put_once(
        self, bucket: str, key: str, body: bytes, headers: list[tuple[str, str]]
    ) -> dict[str, Any]:
        request = self.submit(
            bucket, key, "", io.BytesIO(body), headers, operation="PutObject", length=len(body)
        )
        return request.outcome()

    def submit(
        self,
        bucket: str,
        key: str,
        query: str,
        body: Any,
        headers: list[tuple[str, str]],
        *,
        operation: str,
        length: int,
        on_done: Callable[[], None] | None = None,
        waitable: bool = True,
    ) -> Sent:
        """Start one PUT of ``body`` (a binary stream of ``length`` bytes) to ``key`` (with
        ``query``), signed with the provider's current set: the request in flight. ``on_done``
        is called, in a CRT thread, when it has ended; a request that is not ``waitable`` has
        no event to wait on (its caller learns that it ended from ``on_done`` alone).

        The CRT holds ``on_done`` until the request is gone, so it must not hold the
        :class:`Sent` returned, or anything holding it: that cycle runs through C, where the
        collector cannot see it, and would never be freed."""
        from awscrt.http import HttpHeaders, HttpRequest  # type: ignore[import-untyped]
        from awscrt.s3 import S3RequestType

        host, path = self._where(bucket, key)
        all_headers = HttpHeaders([("Host", host), *headers])
        request = HttpRequest("PUT", path + query, all_headers, body)
        sent = Sent(
            operation=operation,
            deadline=_deadline(length),
            done=threading.Event() if waitable else None,
        )
        done = sent.done
        answer = sent.answer

        def on_headers(status_code: int, headers: list[tuple[str, str]], **kwargs: Any) -> None:
            answer.status = status_code
            answer.headers = {name.lower(): value for name, value in headers}

        def on_finished(
            error: BaseException | None = None,
            error_body: bytes | None = None,
            error_headers: list[tuple[str, str]] | None = None,
            status_code: int | None = None,
            **kwargs: Any,
        ) -> None:
            answer.error = error
            answer.error_body = (error_body or b"")[:_ERROR_BODY_LIMIT]
            if error is not None:
                answer.status = status_code
            if error_headers is not None:
                answer.headers = {name.lower(): value for name, value in error_headers}
            if done is not None:
                done.set()
            if on_done is not None:
                on_done()

        single = operation == "PutObject"
        sent.request = self._client.make_request(
            type=S3RequestType.PUT_OBJECT if single else S3RequestType.DEFAULT,
            operation_name=None if single else operation,
            request=request,
            signing_config=self._signing(),
            on_headers=on_headers,
            on_done=on_finished,
        )
        return sent

    def _where(self, bucket: str, key: str) -> tuple[str, str]:
        quoted = quote(key, safe="/~")
        if self._path_style or "." in bucket:  # a dotted name would not match the certificate
            return self._host, f"{self._base_path}/{bucket}/{quoted}"
        return f"{bucket}.{self._host}", f"{self._base_path}/{quoted}"

    # -- credentials -----------------------------------------------------------------------

    def _signing(self) -> Any:
        """A signing configuration with the provider's current set, fetched here so that a
        failure is the provider's typed error, in the caller's thread."""
        from awscrt.auth import AwsCredentialsProvider

        credentials = self._provider().get()
        with self._lock:
            cached = self._signing_cache
            if cached is None or cached[0] != credentials.access_key_id:
                static = AwsCredentialsProvider.new_static(
                    credentials.access_key_id, credentials.secret_access_key, credentials.token
                )
                cached = (credentials.access_key_id, self._signing_config(static))
                self._signing_cache = cached
            return cached[1]

    def _signing_config(self, credentials_provider: Any) -> Any:
        # S3's SigV4: the path is encoded once (it is already percent-encoded) and not
        # normalised, and the payload is UNSIGNED-PAYLOAD: the checksum header, which is signed,
        # is what protects the body (S3 refuses a body that does not match it).
        from awscrt.s3 import create_default_s3_signing_config

        return create_default_s3_signing_config(
            region=self._region, credential_provider=credentials_provider
        )

    def _delegate(self) -> Any:
        # The client must have a provider of its own. Every request brings its signing
        # configuration, so this runs only if the CRT signs something else; it is the taskcreds
        # provider even then.
        from awscrt.auth import AwsCredentials

        credentials = self._provider().get()
        return AwsCredentials(
            credentials.access_key_id, credentials.secret_access_key, credentials.token
        )


def _deadline(length: int) -> float:
    return _DEADLINE_SECONDS + length / _DEADLINE_BYTES_PER_SECOND


def is_redirect(error: BaseException) -> bool:
    """Whether S3 answered that the bucket is elsewhere (another region)."""
    return isinstance(error, ClientError) and error_code_and_message(error)[0] in REDIRECT_CODES


def header_list(
    extra_args: Mapping[str, Any], algorithm: str, checksum: str | None, length: int
) -> list[tuple[str, str]]:
    headers = [("Content-Length", str(length)), *fixed_headers(extra_args)]
    if checksum is not None:
        headers.append((checksum_header(algorithm), checksum))
    return headers


def checksum_header(algorithm: str) -> str:
    """The header that carries a body's ``algorithm`` checksum (``x-amz-checksum-crc32c``...)."""
    return f"x-amz-checksum-{algorithm.lower()}"


def fixed_headers(extra_args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The headers of ``extra_args`` (content type, tags, storage class, encryption, metadata):
    all but the length and the checksum, which depend on the body."""
    headers = [
        (header, str(extra_args[name])) for name, header in _HEADER_OF.items() if name in extra_args
    ]
    for name, value in (extra_args.get("Metadata") or {}).items():
        headers.append((f"x-amz-meta-{name}", str(value)))
    return headers


def _parsed(headers: Mapping[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    if "etag" in headers:
        parsed["ETag"] = headers["etag"]
    if "x-amz-version-id" in headers:
        parsed["VersionId"] = headers["x-amz-version-id"]
    for name, value in headers.items():
        if name.startswith("x-amz-checksum-") and name != "x-amz-checksum-type":
            parsed["Checksum" + name.removeprefix("x-amz-checksum-").upper()] = value
    return parsed


def _client_error(answer: _Answer, operation: str = "PutObject") -> ClientError | None:
    """botocore's ClientError for an error answer (None when there was no answer)."""
    status = answer.status
    if status is None or status < 300:
        return None
    code, message = _error_fields(answer.error_body)
    response: Any = {
        "Error": {"Code": code or str(status), "Message": message or ""},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": dict(answer.headers)},
    }
    return ClientError(response, operation)


def _retried_out(answer: _Answer, operation: str) -> ClientError | None:
    """The ClientError of an answer the CRT retried until it gave up: it then reports its own
    error for the last one (``AWS_ERROR_S3_INTERNAL_ERROR``...), without S3's status or body."""
    name = str(getattr(answer.error, "name", ""))
    if name not in _RETRIED_OUT:
        return None
    code, status = _RETRIED_OUT[name]
    response: Any = {
        "Error": {
            "Code": code,
            "Message": f"S3 answered {status} {code} to every attempt (the CRT reported {name})",
        },
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    return ClientError(response, operation)


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    if not body.strip():
        return None, None
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - S3's own answer, 64 KiB at most
    except ElementTree.ParseError:
        return None, None
    return root.findtext("Code"), root.findtext("Message")
