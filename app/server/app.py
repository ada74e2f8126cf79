"""create_app(gateway) -> Sanic: settings, guards, error rendering, accounting."""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import re
from collections.abc import AsyncIterator, Callable
from typing import cast

from loguru import logger
from sanic import HTTPResponse, Request, Sanic
from sanic import exceptions as sanic_errors
from sanic.handlers import ErrorHandler
from sanic.http import Http

from ..errors import (
    ClientError,
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    UpstreamError,
)
from .accounting import RequestRecord
from .dialect_routes import error_payload, is_anthropic_path, register_dialect_routes
from .guard import Guard
from .lean import GatewaySanic, Response
from .routes import json_response, register_routes, unknown_route
from .state import Gateway
from .status import PAGE_PATH, register_status_routes

_names = itertools.count(1)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class GatewayRequest(Request):
    """Sanic's request, with a deadline and a size limit on receiving the body.

    POST routes are streaming routes, so that the guard runs before the body is read; the
    body is then read here. Sanic's REQUEST_TIMEOUT covers the headers only: a client that
    sends its body a byte a minute would otherwise hold a connection as long as it likes."""

    async def receive_body(self) -> None:
        if self.body:
            return
        limit = self.app.config.REQUEST_MAX_SIZE
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge("The request body is too large")
        if isinstance(self.stream, Http):
            # Sanic lifts the limit for streaming routes (which POST routes are, see the
            # class); with it back, a chunk that declares more than the limit is refused
            # as its size line arrives, not waited for
            self.stream.request_max_size = limit
        if self._body_arrived():  # reading it cannot wait: no deadline to keep
            self.body = await self._read_body(limit)
            return
        try:
            async with asyncio.timeout(self.app.config.REQUEST_TIMEOUT):
                self.body = await self._read_body(limit)
        except TimeoutError:
            self._close_after_answer()
            raise RequestTimeout("The request body arrived too slowly") from None

    async def _read_body(self, limit: int) -> bytes:
        parts, size = [], 0
        async for data in cast(AsyncIterator[bytes], self.stream):
            size += len(data)
            if size > limit:
                self._close_after_answer()
                raise PayloadTooLarge("The request body is too large")
            parts.append(data)
        return b"".join(parts)

    def _body_arrived(self) -> bool:
        """True when the whole body (of a declared length) came with the head, as a small
        one does: it is in Sanic's buffer already."""
        http = self.stream
        return (
            isinstance(http, Http)
            and http.request_body is True
            and not http.expecting_continue
            and len(http.recv_buffer) >= http.request_bytes_left
        )

    def _close_after_answer(self) -> None:
        """The rest of an unread body is still on the way: the connection cannot carry a
        next request, so the answer says `connection: close` and the connection ends."""
        if isinstance(self.stream, Http):
            self.stream.keep_alive = False
            self.stream.request_body = None  # nor wait for the rest of it after the answer


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length.strip() != "0")


def request_id(request: Request, redact: Callable[[str], str]) -> str:
    """The client's `x-request-id` when it is sane, else a new one; fixed per request.
    Sane: a short token of plain characters that holds nothing secret-looking (it is
    echoed in the response, and no response carries a key)."""
    rid = getattr(request.ctx, "request_id", None)
    if rid is None:
        given = request.headers.get("x-request-id", "")
        sane = _SAFE_REQUEST_ID.match(given) is not None and redact(given) == given
        rid = given if sane else "req-" + os.urandom(16).hex()
        request.ctx.request_id = rid
    return rid


def start_record(request: Request, redact: Callable[[str], str]) -> RequestRecord:
    return RequestRecord.start(request_id(request, redact), request.method, request.path)


def as_gateway_error(exc: BaseException, request: Request | None) -> GatewayError:
    """Any exception as a member of our tree; Sanic's own errors keep their meaning."""
    if isinstance(exc, GatewayError):
        return exc
    method = request.method if request is not None else "?"
    path = request.path if request is not None else "?"
    if isinstance(exc, sanic_errors.NotFound):
        return unknown_route(method, path)
    if isinstance(exc, sanic_errors.MethodNotAllowed):
        if set(getattr(exc, "allowed_methods", None) or ()) <= {"OPTIONS"}:
            return unknown_route(method, path)  # only the preflight route matched
        return MethodNotAllowed(f"Method {method} is not allowed for {path}")
    if isinstance(exc, sanic_errors.PayloadTooLarge):
        if "header" in str(exc).lower():  # Sanic's own limit on the request head
            return HeadersTooLarge("The request headers are too large")
        return PayloadTooLarge("The request body is too large")
    if isinstance(exc, sanic_errors.SanicException):
        status = getattr(exc, "status_code", 500) or 500
        message = str(exc) or type(exc).__name__
        if status == 400:
            return InvalidRequest(message)
        err: GatewayError = ClientError(message) if status < 500 else GatewayError(message)
        err.status = status  # e.g. 408 for a request that came too slowly
        return err
    return GatewayError("Internal gateway error; see the gateway log")


class OpenAIErrorHandler(ErrorHandler):
    """Renders every failure as an OpenAI error body: the one rendering path."""

    def __init__(self, gateway: Gateway):
        super().__init__()
        self.gateway = gateway

    def default(self, request: Request, exception: BaseException) -> HTTPResponse:
        err = as_gateway_error(exception, request)
        # quiet errors are the client's or an upstream's doing; a cancellation is a client
        # that left (RequestCancelled): nobody will read this. The rest is a gateway bug.
        if not err.quiet and not isinstance(exception, asyncio.CancelledError):
            logger.opt(exception=exception).error("unhandled error in a request handler")
        headers: dict[str, str] = {}
        if isinstance(err, UpstreamError):
            # the gateway's own retry policy already ran: SDK retries would only multiply it
            headers["x-should-retry"] = "false"
            if err.retry_after is not None:
                headers["retry-after"] = str(max(0, math.ceil(err.retry_after)))
        if request is not None:  # x-request-id and CORS headers come from stamp_response
            record = getattr(request.ctx, "record", None)
            if record is None:  # refused before the guard ran (unknown route, bad HTTP)
                record = start_record(request, self.gateway.redact)
            if not record.logged:
                if isinstance(exception, asyncio.CancelledError):
                    record.disconnected = True  # gone before an answer: no status was sent
                else:
                    record.status = err.status
                    record.error = record.error or err.message
                record.log()
        payload = error_payload(request.path if request is not None else "", err, self.gateway.redact)
        return json_response(payload, status=err.status, headers=headers)


def check_request(request: Request, guard: Guard) -> HTTPResponse | None:
    """Host, Origin, token and body type, in that order; answers a preflight itself."""
    if len(request.headers.getall("host", [])) > 1:  # which one would a proxy, or a check, believe?
        raise InvalidRequest("A request may carry one Host header only", code="duplicate_host")
    if not request.raw_url.startswith(b"/"):
        # `GET http://other.host/path` names its host in the target, and HTTP says that
        # one outranks the Host header: the gateway is no proxy, and checks one host only
        raise InvalidRequest("The request target must be a path (the gateway is not a proxy)", code="invalid_target")
    guard.check_host(request.headers.get("host"))
    origin = request.headers.get("origin")
    if request.method == "OPTIONS":
        if origin is None:
            return Response(status=204, headers={"allow": "GET, POST, OPTIONS"})
        guard.check_origin(origin)
        return Response(
            status=204, headers=guard.preflight_headers(origin, request.headers.get("access-control-request-headers"))
        )
    guard.check_origin(origin)
    if is_anthropic_path(request.path):  # Anthropic's clients send the key as x-api-key
        guard.check_api_key(request.headers.get("x-api-key"), request.headers.get("authorization"))
    elif not (request.method in ("GET", "HEAD") and request.path == PAGE_PATH):  # the status page holds no data
        guard.check_token(request.headers.get("authorization"))
    if request.method == "POST" and _has_body(request):  # an empty POST needs no content type
        guard.check_json_body(request.headers.get("content-type"))
    return None


def create_app(gateway: Gateway) -> Sanic:
    app = GatewaySanic(f"ai-gateway-{next(_names)}", configure_logging=False, request_class=GatewayRequest)
    settings = gateway.config.server
    app.config.update(
        {
            "TOUCHUP": False,  # reads source code, which a frozen build lacks
            "MOTD": False,
            "AUTO_EXTEND": False,
            "ACCESS_LOG": False,
            "NOISY_EXCEPTIONS": False,
            "FALLBACK_ERROR_FORMAT": "json",
            "REQUEST_MAX_SIZE": int(settings.max_body_mb * 1024 * 1024),
            # the time a client gets to send its request: slow-header attacks end here
            "REQUEST_TIMEOUT": settings.request_timeout,
            # an idle-write timer; streams are bounded by our own first-byte/idle/total timeouts
            "RESPONSE_TIMEOUT": 24 * 3600,
            "KEEP_ALIVE_TIMEOUT": 30,
        }
    )
    app.error_handler = OpenAIErrorHandler(gateway)

    @app.signal("http.lifecycle.exception")
    async def remember_failure(request: Request | None, exception: BaseException) -> None:
        if request is not None:
            request.ctx.failed_with = exception

    @app.on_request
    async def guard_request(request: Request) -> HTTPResponse | None:
        failed = getattr(request.ctx, "failed_with", None)
        if failed is not None and not isinstance(failed, (sanic_errors.NotFound, sanic_errors.MethodNotAllowed)):
            # Sanic runs request middleware again before rendering an error. A request it
            # could not even parse (duplicate Content-Length, an oversized head) has no
            # headers to check; one the guard already refused or passed must keep the
            # answer it earned. Routing errors do pass the guard: no 404 before a 403.
            return None
        request.ctx.record = start_record(request, gateway.redact)
        return check_request(request, gateway.guard)

    @app.on_response
    async def stamp_response(request: Request, response: HTTPResponse) -> None:
        response.headers["x-request-id"] = request_id(request, gateway.redact)
        origin = request.headers.get("origin")
        if origin is not None and request.method != "OPTIONS":
            response.headers.update(gateway.guard.cors_headers(origin))

    # preflights are answered by the guard; these routes only make OPTIONS routable
    @app.route("/<path:path>", methods=["OPTIONS"], name="preflight")
    async def preflight(request: Request, path: str) -> HTTPResponse:
        return Response(status=204)

    register_routes(app, gateway)
    register_dialect_routes(app, gateway)
    register_status_routes(app, gateway)
    return app
