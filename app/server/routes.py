"""The HTTP API: /health, /v1/models, /v1/chat/completions, /v1/embeddings, /admin/*."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from sanic import HTTPResponse, Request, Sanic

from .. import wire
from ..errors import ConfigError, GatewayError, InvalidRequest, NotFound
from ..text import header_value
from .bodies import check_chat_request, check_embeddings_request, parse_json_object
from .lean import Response
from .procstats import process_stats
from .relay import relay_stream
from .state import Gateway


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return Response(orjson.dumps(payload), status=status, headers=headers, content_type="application/json")


def target_headers(target_label: str, redact: Callable[[str], str]) -> dict[str, str]:
    # the label holds the model the client named: it must not write raw bytes into a
    # header, nor echo a key (the same few labels recur: the redactor's memo takes them)
    return {"x-gateway-target": header_value(redact(target_label))}


Handler = Callable[..., Awaitable[HTTPResponse | None]]


def accounted(gateway: Gateway, handler: Handler) -> Handler:
    """Completes the request's log line however the handler ends, and tracks it in flight."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse | None:
        record = request.ctx.record
        task = asyncio.current_task()
        gateway.inflight.add(task)
        try:
            response = await handler(request, *args, **kwargs)
        except asyncio.CancelledError:
            # Sanic cancels the handler when the client leaves; a stop cancels it too
            if gateway.stopping:
                record.error = record.error or "cancelled by the gateway's stop"
            elif not record.answered:
                record.disconnected = True
            raise
        except GatewayError as exc:
            record.status, record.error = exc.status, exc.message
            record.target = getattr(exc, "target", None) or record.target
            raise
        except Exception as exc:
            record.status, record.error = 500, f"internal error: {type(exc).__name__}"
            raise
        else:
            if response is not None:
                record.status = response.status
            return response
        finally:
            gateway.inflight.discard(task)
            record.log()

    return wrapper


def register_routes(app: Sanic, gateway: Gateway) -> None:
    def route(method: str, path: str) -> Callable[[Handler], Handler]:
        # POST bodies are read by the handlers (`read_body`), after the guard has run:
        # a request from a refused Host or without the token is never read in full
        def register(handler: Handler) -> Handler:
            app.route(path, methods=[method], stream=method == "POST")(accounted(gateway, handler))  # type: ignore[arg-type]
            return handler

        return register

    @route("GET", "/health")
    async def health(request: Request) -> HTTPResponse:
        return health_response(gateway)

    @route("GET", "/v1/models")
    async def list_models(request: Request) -> HTTPResponse:
        ids = gateway.router.table.model_ids()
        return json_response({"object": "list", "data": [wire.model_object(i, owner) for i, owner in ids]})

    @route("GET", "/v1/models/<model_id:path>")
    async def get_model(request: Request, model_id: str) -> HTTPResponse:
        model_id = unquote(model_id)  # the SDKs send `provider/model` as `provider%2Fmodel`
        owner = gateway.router.table.owner(model_id)
        return json_response(wire.model_object(gateway.redact(model_id), owner))

    @route("POST", "/v1/chat/completions")
    async def chat_completions(request: Request) -> HTTPResponse | None:
        return await chat_response(request, gateway)

    @route("POST", "/v1/embeddings")
    async def embeddings(request: Request) -> HTTPResponse:
        record = request.ctx.record
        body = parse_json_object(await read_body(request))
        check_embeddings_request(body)
        record.model = body["model"]
        served = await gateway.router.embeddings(body, record.attempting)
        record.target, record.attempts = served.target.label, served.attempts
        record.observe_usage(served.value.get("usage"))
        return json_response(served.value, headers=target_headers(served.target.label, gateway.redact.recurring))

    @route("GET", "/admin/stats")
    async def stats(request: Request) -> HTTPResponse:
        return json_response(stats_report(gateway))

    @route("POST", "/admin/reload")
    async def reload(request: Request) -> HTTPResponse:
        await read_body(request)  # none is needed; one that came (even empty) is read
        return json_response(await reload_report(gateway))

    @route("POST", "/admin/shutdown")
    async def shutdown(request: Request) -> HTTPResponse:
        await read_body(request)
        if gateway.request_stop is None:
            raise NotFound("Shutting down over HTTP is not available in this process")
        # answer first, then stop: the caller deserves to hear that it worked
        asyncio.get_running_loop().call_later(0.05, gateway.request_stop, "shutdown-request")
        return json_response({"status": "stopping"})


async def chat_response(request: Request, gateway: Gateway) -> HTTPResponse | None:
    """A chat completion: relayed as SSE (then None: the response went out), or whole."""
    record = request.ctx.record
    body = parse_json_object(await read_body(request))
    record.model = body.get("model") if isinstance(body.get("model"), str) else None
    check_chat_request(body)
    router = gateway.router
    if body.get("stream"):
        record.stream = True
        stream = await router.open_stream(body, record.attempting)
        record.target, record.attempts = stream.target.label, stream.attempts
        await relay_stream(
            request,
            stream,
            record,
            gateway.config.timeouts.heartbeat,
            target_headers(stream.target.label, gateway.redact.recurring),
            gateway.redact,
            lambda: gateway.stopping,
        )
        return None
    served = await router.complete(body, record.attempting)
    record.target, record.attempts = served.target.label, served.attempts
    record.observe_usage(served.value.get("usage"))
    return json_response(served.value, headers=target_headers(served.target.label, gateway.redact.recurring))


def health_response(gateway: Gateway) -> HTTPResponse:
    """ok, or 503 degraded while no upstream request could get a connection."""
    pool = gateway.upstream_pool() if gateway.upstream_pool else None
    exhausted = pool is not None and pool["limit"] > 0 and pool["free"] == 0
    body: dict[str, object] = {
        "status": "degraded" if exhausted else "ok",
        "version": gateway.version,
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - gateway.started, 3),
    }
    if exhausted:
        body["reason"] = "every upstream connection is in use; new upstream requests wait for one"
    if pool is not None:
        body["upstream_pool"] = pool
    return json_response(body, status=503 if exhausted else 200)


def stats_report(gateway: Gateway) -> dict[str, Any]:
    """What a leak would show: requests in flight, asyncio tasks, descriptors, memory,
    the upstream pool, the cooldown bookkeeping."""
    return {
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - gateway.started, 3),
        "inflight_requests": len(gateway.inflight),
        "asyncio_tasks": len(asyncio.all_tasks()),
        "upstream_pool": gateway.upstream_pool() if gateway.upstream_pool else None,
        "cooldown_targets": len(gateway.router.cooldowns),
        **process_stats(),
    }


async def reload_report(gateway: Gateway) -> dict[str, Any]:
    if gateway.reload is None:
        raise NotFound("Reloading is not available in this process")
    try:
        return await gateway.reload()
    except ConfigError as exc:
        raise InvalidRequest(
            f"The new configuration was refused, the old one stays: {exc.message}", code="invalid_config"
        ) from None


async def read_body(request: Request) -> bytes:
    """The whole body, within the request deadline (see GatewayRequest)."""
    await request.receive_body()
    return request.body


def unknown_route(method: str, path: str) -> GatewayError:
    return NotFound(f"Unknown route: {method} {path}", code="unknown_route")
