"""What every provider offers, and the translation of foreign errors into ours."""

from __future__ import annotations

import email.utils
import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx
import orjson

from ..config import ProviderSettings
from ..errors import (
    NotFound,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
    is_retryable_status,
)
from ..sse import StreamItem
from ..wire import Chunk, Completion


class Provider(ABC):
    """One configured upstream. `stream()` ends normally only when the upstream finished."""

    def __init__(self, settings: ProviderSettings):
        self.settings = settings
        self.name = settings.name

    @abstractmethod
    async def complete(self, body: dict[str, Any], model: str) -> Completion:
        """A non-streamed chat completion, in the OpenAI shape."""

    @abstractmethod
    def stream(self, body: dict[str, Any], model: str) -> AsyncGenerator[StreamItem, None]:
        """Chat completion chunks in the OpenAI shape (as dicts, or as the upstream's own
        SSE bytes, `sse.Framed`); raises if the stream breaks off."""

    async def embeddings(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        raise NotFound(f"provider '{self.name}' does not offer embeddings", param="model", code="model_not_found")

    # -- other dialects, passed through unchanged where the upstream speaks them -----------
    def speaks(self, dialect: str) -> bool:
        """Whether the upstream takes `dialect` ("anthropic", "responses") requests as they are."""
        return False

    async def native_complete(
        self, dialect: str, body: dict[str, Any], model: str, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The upstream's own answer to a `dialect` request (only when `speaks(dialect)`)."""
        raise NotImplementedError

    def native_stream(
        self, dialect: str, body: dict[str, Any], model: str, headers: Mapping[str, str] | None = None
    ) -> AsyncGenerator[Chunk, None]:
        """The upstream's own stream events (`dialects.base.NativeEvent`) for a `dialect` request."""
        raise NotImplementedError

    async def count_tokens(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        """Anthropic's `/v1/messages/count_tokens`, where the upstream offers it."""
        raise NotFound(
            f"provider '{self.name}' cannot count tokens; token counting is offered for "
            "models served by an Anthropic provider",
            param="model",
            code="count_tokens_unsupported",
        )

    async def aclose(self) -> None:
        """Release what the provider holds (processes, connections of its own)."""


# -- the boundary: foreign errors become ours ---------------------------------------------


def translate_http_errors(provider: str) -> _HttpErrors:
    """Map httpx's exceptions to the gateway's tree, as httpx itself maps httpcore's (a
    `with` block)."""
    return _HttpErrors(provider)


class _HttpErrors:
    """`translate_http_errors`: a class, not a generator, because every upstream request
    enters a few of these (a generator-based one costs three times as much)."""

    __slots__ = ("provider",)

    def __init__(self, provider: str):
        self.provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not isinstance(exc, (httpx.HTTPError, OSError)):
            return
        provider = self.provider
        if isinstance(exc, httpx.TimeoutException):
            if isinstance(exc, httpx.ConnectTimeout):
                raise UpstreamTimeout(f"upstream '{provider}': connection timed out") from exc
            raise UpstreamTimeout(f"upstream '{provider}': timed out ({type(exc).__name__})") from exc
        if isinstance(exc, httpx.ConnectError):
            raise UpstreamUnreachable(f"upstream '{provider}' is unreachable: {_reason(exc)}") from exc
        if isinstance(exc, (httpx.ReadError, httpx.WriteError)):  # a reset or a broken pipe
            raise UpstreamProtocolError(f"upstream '{provider}': the connection was lost ({_reason(exc)})") from exc
        if isinstance(exc, httpx.RemoteProtocolError):
            raise UpstreamProtocolError(
                f"upstream '{provider}' closed the connection unexpectedly: {_reason(exc)}"
            ) from exc
        if isinstance(exc, httpx.DecodingError):
            raise UpstreamProtocolError(f"upstream '{provider}' sent an undecodable body") from exc
        if isinstance(exc, (httpx.TooManyRedirects, httpx.UnsupportedProtocol, httpx.InvalidURL)):
            raise UpstreamUnreachable(f"upstream '{provider}': {_reason(exc)}") from exc
        if isinstance(exc, httpx.HTTPError):
            raise UpstreamUnreachable(f"upstream '{provider}' failed: {_reason(exc)}") from exc
        # raised below httpx by some transports (e.g. a reset during TLS)
        raise UpstreamUnreachable(f"upstream '{provider}' failed: {getattr(exc, 'strerror', None) or exc}") from exc


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            ms = float(value)
        except ValueError:
            ms = -1
        if ms >= 0:
            return ms / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
        return seconds if seconds >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


# Upstream status -> the status our client gets. 5xx becomes 502 (the gateway's upstream
# failed, the gateway did not), timeouts become 504, client errors keep their status so
# the SDK raises the same exception it would have raised against the upstream directly.
_PASSED_THROUGH = {400, 401, 403, 404, 409, 413, 415, 422, 429}


def client_status_for(upstream_status: int) -> int:
    if upstream_status in _PASSED_THROUGH:
        return upstream_status
    if upstream_status in (408, 504, 524):
        return 504
    if 400 <= upstream_status < 500:
        return 400
    return 502


_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
}


def error_from_response(provider: str, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """Normalise an upstream's error answer (OpenAI JSON, other JSON, HTML, empty)."""
    message, type_, param, code = _describe_error_body(body)
    retry_after = parse_retry_after(headers)
    if retry_after is None:
        retry_after = _retry_delay_in_body(body)
    prefix = f"upstream '{provider}' answered {status}"
    text = f"{prefix}: {message}" if message else prefix
    if status == 429:
        return UpstreamRateLimited(text, retry_after=retry_after, code=code)
    client_status = client_status_for(status)
    err = UpstreamStatusError(
        text,
        status=client_status,
        type=type_ if client_status < 500 and type_ else _TYPE_FOR_STATUS.get(client_status, "api_error"),
        param=param,
        code=code or ("upstream_error" if client_status >= 500 else None),
        retry_after=retry_after,
        retryable=is_retryable_status(status),
    )
    return err


def _describe_error_body(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    """(message, type, param, code) from whatever the upstream sent."""
    if not body or not body.strip():
        return "", None, None, None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _text_excerpt(body), None, None, None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, str):
            return err[:1000], None, None, None
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or err.get("msg") or ""
            if not isinstance(message, str):
                message = orjson.dumps(message).decode()[:1000]
            type_ = err.get("type") if isinstance(err.get("type"), str) else None
            param = err.get("param") if isinstance(err.get("param"), str) else None
            code = err.get("code")
            if isinstance(code, int) and isinstance(err.get("status"), str):
                code = err["status"]  # Google's errors: {"code": 429, "status": "RESOURCE_EXHAUSTED"}
            code = str(code) if isinstance(code, (str, int)) and not isinstance(code, bool) else None
            return message[:1000], type_, param, code
    return orjson.dumps(data).decode()[:300], None, None, None


def _retry_delay_in_body(body: bytes) -> float | None:
    """Google's APIs say when to retry in the body: a `google.rpc.RetryInfo` detail, "7s"."""
    if b"retryDelay" not in body:
        return None
    try:
        details = orjson.loads(body)["error"]["details"]
        delay = next(d["retryDelay"] for d in details if isinstance(d, dict) and "retryDelay" in d)
        return max(0.0, float(str(delay).removesuffix("s")))
    except (orjson.JSONDecodeError, KeyError, TypeError, StopIteration, ValueError):
        return None


def _text_excerpt(body: bytes) -> str:
    """A short, single-line excerpt of a non-JSON body (an HTML error page, say)."""
    text = body[:2000].decode("utf-8", errors="replace")
    if "<" in text and ">" in text:
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.S | re.I)
        if title and title.group(1).strip():
            return " ".join(title.group(1).split())[:200]
        text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(text.split())[:200]


def decode_json_body(provider: str, body: bytes) -> Any:
    """A successful answer's JSON, or a protocol error naming the provider."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(
            f"upstream '{provider}' answered with a body that is not JSON: {_text_excerpt(body)!r}"
        ) from None
