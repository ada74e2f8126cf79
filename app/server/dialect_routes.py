"""Routes in other APIs' dialects: `POST /v1/responses` (OpenAI Responses) and
`POST /v1/messages` (+ `/count_tokens`, Anthropic Messages).

Each request becomes the OpenAI chat shape, is routed once like a chat completion
(aliases, fallbacks, retries before the first byte, timeouts), and its answer is written
back in the client's dialect. A target whose upstream speaks the dialect itself gets the
request unchanged (model replaced) and its answer is relayed as it came.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from sanic import HTTPResponse, Request, Sanic

from ..dialects import anthropic, responses
from ..dialects.base import StreamWriter
from ..errors import GatewayError, InvalidRequest
from ..providers.base import Provider
from ..routing.router import Served
from ..sse import StreamItem
from ..wire import Chunk, error_body
from .bodies import check_model, parse_json_object
from .relay import relay_stream
from .response_store import ResponseStore
from .routes import accounted, json_response, read_body, target_headers
from .state import Gateway

ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
#: the client's headers an Anthropic upstream gets on passthrough (feature flags, version)
_ANTHROPIC_HEADERS = ("anthropic-beta", "anthropic-version")


def is_anthropic_path(path: str) -> bool:
    return path in ANTHROPIC_PATHS


def error_payload(path: str, err: GatewayError, redact: Callable[[str], str]) -> Any:
    """An error body in the dialect of the route it answers."""
    if is_anthropic_path(path):
        return anthropic.error_body(err, redact)
    return error_body(err, redact)


class Translation:
    """The chat form of one request, made once and only if a translated target needs it
    (a passthrough target takes the request as it is)."""

    def __init__(self, make: Callable[[], dict[str, Any]]):
        self._make = make
        self._chat: dict[str, Any] | None = None
        #: whether the target that answered took the request natively
        self.native = False

    @property
    def chat(self) -> dict[str, Any]:
        if self._chat is None:
            self._chat = self._make()
        return self._chat


def register_dialect_routes(app: Sanic, gateway: Gateway) -> None:
    routes = DialectRoutes(gateway)
    for path, handler in (
        ("/v1/responses", routes.create_response),
        ("/v1/messages", routes.create_message),
        ("/v1/messages/count_tokens", routes.count_tokens),
    ):
        # streamed like every POST route: the guard runs before the body is read
        handle = accounted(gateway, handler)
        app.route(path, methods=["POST"], stream=True, name=handler.__name__)(handle)  # type: ignore[arg-type]


class DialectRoutes:
    """The handlers of the dialect routes, over the gateway's live state and one store of
    recent Responses (for `previous_response_id`)."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.store = ResponseStore()

    async def serve(
        self,
        request: Request,
        body: dict[str, Any],
        dialect: str,
        translation: Translation,
        writer: StreamWriter,
        finish: Callable[[Chunk], dict[str, Any]],
    ) -> Served[dict[str, Any]] | None:
        """Route the request; stream it through `writer`, or return the whole answer."""
        gateway = self.gateway
        record = request.ctx.record
        router = gateway.router
        headers = {k: v for k in _ANTHROPIC_HEADERS if (v := request.headers.get(k))}

        if body.get("stream"):
            record.stream = True

            def open_(provider: Provider, model: str) -> AsyncGenerator[StreamItem, None]:
                translation.native = provider.speaks(dialect)
                if translation.native:
                    return provider.native_stream(dialect, body, model, headers)
                return provider.stream(translation.chat, model)

            stream = await router.open_stream(body, record.attempting, open_=open_)
            record.target, record.attempts = stream.target.label, stream.attempts
            await relay_stream(
                request,
                stream,
                record,
                gateway.config.timeouts.heartbeat,
                target_headers(stream.target.label, gateway.redact.recurring),
                gateway.redact,
                lambda: gateway.stopping,
                writer,
            )
            return None

        async def call(provider: Provider, model: str) -> dict[str, Any]:
            translation.native = provider.speaks(dialect)
            if translation.native:
                return await provider.native_complete(dialect, body, model, headers)
            completion = await provider.complete(translation.chat, model)
            record.observe_usage(completion.get("usage"))
            return finish(completion)

        served = await router.answer(body, call, record.attempting)
        record.target, record.attempts = served.target.label, served.attempts
        if translation.native:
            record.observe_usage(served.value.get("usage"))
        return served

    async def create_response(self, request: Request) -> HTTPResponse | None:
        body = parse_json_object(await read_body(request))
        request.ctx.record.model = body.get("model") if isinstance(body.get("model"), str) else None
        responses.check_responses_request(body)
        model = body["model"]
        previous: list[dict[str, Any]] | None = None

        def translate() -> dict[str, Any]:
            nonlocal previous
            if body.get("previous_response_id"):
                previous = self.store.get(body["previous_response_id"])
            return responses.from_responses_request(body, previous)

        translation = Translation(translate)
        writer = responses.ResponsesWriter(body, model)
        keep = body.get("store") is not False

        served = await self.serve(
            request,
            body,
            "responses",
            translation,
            writer,
            lambda completion: responses.to_response(completion, body, model),
        )
        final = writer.response if served is None else served.value
        if keep and final is not None and not translation.native:
            self.store.put(final["id"], responses.history_of(previous, body, final))
        if served is None:
            return None
        return json_response(served.value, headers=target_headers(served.target.label, self.gateway.redact.recurring))

    async def create_message(self, request: Request) -> HTTPResponse | None:
        body = parse_json_object(await read_body(request))
        request.ctx.record.model = body.get("model") if isinstance(body.get("model"), str) else None
        anthropic.check_messages_request(body)
        model = body["model"]
        translation = Translation(lambda: anthropic.from_messages_request(body))
        served = await self.serve(
            request,
            body,
            "anthropic",
            translation,
            anthropic.MessagesWriter(model),
            lambda completion: anthropic.to_message(completion, model),
        )
        if served is None:
            return None
        return json_response(served.value, headers=target_headers(served.target.label, self.gateway.redact.recurring))

    async def count_tokens(self, request: Request) -> HTTPResponse:
        body = parse_json_object(await read_body(request))
        request.ctx.record.model = check_model(body)
        if not isinstance(body.get("messages"), list):
            raise InvalidRequest("messages: must be an array", param="messages")
        served = await self.gateway.router.answer(
            body, lambda provider, model: provider.count_tokens(body, model), request.ctx.record.attempting
        )
        request.ctx.record.target = served.target.label
        return json_response(served.value, headers=target_headers(served.target.label, self.gateway.redact.recurring))
