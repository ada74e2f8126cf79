"""The one error tree of ai-gateway.

Every failure a client can see is one of these, rendered by `wire.error_body` into the
OpenAI error shape. Foreign errors (httpx, the OS, an upstream's JSON) are translated
into this tree at the provider boundary and nowhere else.

    GatewayError                      500 api_error          (a gateway bug)
    ├── ClientError                   400 invalid_request_error
    │   ├── InvalidJSON               400
    │   ├── InvalidRequest            400 (names the param)
    │   ├── Unauthorized              401 authentication_error
    │   ├── Forbidden                 403 permission_error
    │   ├── NotFound                  404
    │   │   └── ModelNotFound         404 model_not_found
    │   ├── MethodNotAllowed          405
    │   ├── RequestTimeout            408 (the body came too slowly)
    │   ├── PayloadTooLarge           413
    │   ├── UnsupportedMediaType      415
    │   └── HeadersTooLarge           431
    ├── GatewayStopping               503 (a stop cut the request short)
    ├── ConfigError                   (never sent to a client; exit 78)
    └── UpstreamError                 502 api_error          (the upstream failed)
        ├── UpstreamUnreachable       502 (connect refused, DNS, reset before answer)
        ├── UpstreamTimeout           504
        ├── UpstreamProtocolError     502 (malformed or truncated stream)
        └── UpstreamStatusError       the upstream's status, normalised
            └── UpstreamRateLimited   429 rate_limit_error (carries retry-after)
"""

from __future__ import annotations


def is_retryable_status(status: int) -> bool:
    """408, 429 and 5xx may pass on another try; any other 4xx is the request's fault.
    (The one status rule the tree needs: an upstream's refusal knows if it is retryable.)"""
    return status in (408, 429) or status >= 500


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status: int = 500
    type: str = "api_error"
    code: str | None = "internal_error"
    #: quiet errors are the client's doing: logged as one line, no traceback
    quiet: bool = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class ClientError(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"
    quiet = True


class InvalidJSON(ClientError):
    code = "invalid_json"


class InvalidRequest(ClientError):
    code = "invalid_request"


class Unauthorized(ClientError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(ClientError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(ClientError):
    status = 408
    code = "request_timeout"


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class HeadersTooLarge(ClientError):
    status = 431
    code = "headers_too_large"


class GatewayStopping(GatewayError):
    """The gateway is stopping and cut a request short."""

    status = 503
    code = "gateway_stopping"
    quiet = True


class ConfigError(GatewayError):
    """The configuration is invalid; `key` and `line` say where, when known."""

    code = "invalid_config"

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None):
        where = ""
        if key:
            where = f"{key}: "
        if line:
            where = f"line {line}: {where}"
        super().__init__(where + message)
        self.key = key
        self.line = line


class UpstreamError(GatewayError):
    """The upstream failed. `retryable` feeds the retry policy (the class's default unless
    given); `retry_after` is seconds."""

    status = 502
    type = "api_error"
    code = "upstream_error"
    quiet = True
    retryable: bool = True
    #: the `provider/model` that failed, set by the router
    target: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ):
        super().__init__(message, param=param, code=code)
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status; `status` is what the client gets.

    `retryable` follows the upstream's own status when it differs from ours (a 503 shown
    as 502), so it is given explicitly then."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ):
        super().__init__(
            message,
            param=param,
            code=code,
            retry_after=retry_after,
            retryable=is_retryable_status(status) if retryable is None else retryable,
        )
        self.status = status
        if type:
            self.type = type


class UpstreamRateLimited(UpstreamStatusError):
    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None):
        super().__init__(
            message,
            status=429,
            type="rate_limit_error",
            code=code or "rate_limit_exceeded",
            retry_after=retry_after,
        )
