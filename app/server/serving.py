"""The Sanic server on a socket of ours: start it, and stop it gracefully.

Sanic's server objects stay in this module: the runtime only starts and stops.
"""

from __future__ import annotations

import asyncio
import socket

from sanic import Sanic
from sanic.server.async_server import AsyncioServer

from .protocol import GatewayProtocol
from .state import Gateway


class Serving:
    """A started server. `stop()` is the graceful path every stop reason ends in."""

    def __init__(self, server: AsyncioServer):
        self._server = server

    @classmethod
    async def start(cls, app: Sanic, sock: socket.socket) -> Serving:
        server = await app.create_server(
            sock=sock,
            access_log=False,
            return_asyncio_server=True,
            protocol=GatewayProtocol,
            asyncio_server_kwargs={"start_serving": False},  # not before the app is ready
        )
        assert server is not None  # always, with return_asyncio_server
        await server.startup()
        await server.before_start()
        await server.start_serving()
        await server.after_start()
        return cls(server)

    async def stop(self, gateway: Gateway, drain_seconds: float) -> None:
        """Stop accepting, let requests in flight finish for a while, then cancel the rest."""
        loop = asyncio.get_running_loop()
        server = self._server
        if server.server is not None:  # always, once started
            server.server.close()  # no new connections
        await server.before_stop()
        for connection in list(server.connections):
            connection.close_if_idle()
        deadline = loop.time() + drain_seconds
        # a request may still start on a connection that was busy: wait until none is left
        while gateway.inflight and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(gateway.inflight), timeout=left)
        gateway.stopping = True
        pending = list(gateway.inflight)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)
        for connection in list(server.connections):
            connection.close()
        await gateway.router.aclose()
        await server.after_stop()
