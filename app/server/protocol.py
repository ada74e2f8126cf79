"""Sanic's HTTP/1.1 protocol with the two fixes the gateway needs at the socket level.

- A header deadline that is a deadline: Sanic restarts its request timer on every byte
  received, so a client sending one byte a second holds a connection (and a descriptor)
  forever. Here the timer starts with the request's first byte and is not restarted
  until the head is complete; the body has its own deadline (GatewayRequest).
- No empty `alt-svc` header: Sanic writes one into every response and relies on its
  start-up code rewriting (TouchUp, which a frozen build cannot run) to remove it.
- A chunked body whose chunk holds more than its size line said gets a 400 at once
  (Sanic would read the rest as the next size line and wait for data until the body's
  deadline).
- A request line Sanic cannot parse (an ESC byte in the target, `CONNECT host:port`)
  gets a 400 instead of a dropped connection and a traceback: Sanic builds the request
  for its error response from the same unparsable target and fails again.
"""

from __future__ import annotations

from sanic.compat import Header
from sanic.exceptions import BadRequest, BadURL
from sanic.http import Http, Stage
from sanic.server.protocols.http_protocol import HttpProtocol

from .lean import Response


class _HeadersWithoutEmptyAltSvc(Header):
    def __setitem__(self, key: str, value: str) -> None:
        if value == "" and key.lower() == "alt-svc":
            return
        super().__setitem__(key, value)


class GatewayHttp(Http):
    async def read(self) -> bytes | None:
        if self.request_bytes_left == 0 and self.request_body == "chunked":
            # Sanic takes the two bytes after a chunk's data for its CRLF without looking:
            # a chunk longer than it said would be read as the next size line, and the
            # request would wait for data that never comes, until its deadline
            while len(self.recv_buffer) < 2:
                await self._receive_more()
            if self.recv_buffer[:2] != b"\r\n":
                self.keep_alive = False
                raise BadRequest("Bad chunked encoding")
        return await super().read()

    async def http1_response_header(self, data: bytes, end_stream: bool) -> None:
        response = self.response
        if (
            response is not None
            and not isinstance(response, Response)  # leaves it out itself, without a copy
            and not isinstance(response.headers, _HeadersWithoutEmptyAltSvc)
        ):
            response.headers = _HeadersWithoutEmptyAltSvc(response.headers)
        await super().http1_response_header(data, end_stream)

    def create_empty_request(self) -> None:
        try:
            super().create_empty_request()
        except BadURL:
            self.url = "/"  # the error response only needs some request to hang on
            super().create_empty_request()


class GatewayProtocol(HttpProtocol):
    HTTP_CLASS = GatewayHttp

    def data_received(self, data: bytes) -> None:
        http = getattr(self, "_http", None)
        if http is None or http.stage is not Stage.REQUEST:
            super().data_received(data)
            return
        started = self._time  # while the head arrives, bytes do not buy more time
        super().data_received(data)
        self._time = started
