"""The Windows event loop, made to keep accepting when a client resets during accept.

asyncio's proactor loop (the Windows default, and the one that runs subprocesses there)
closes the *listening* socket when an accept fails for any reason, including a client
that connected and reset before the accept completed (ERROR_NETNAME_DELETED; Wine says
ERROR_UNEXP_NET_ERR). The gateway then runs on, healthy by every other sign, and never
accepts a connection again (CPython issue gh-93821, open). The chaos suite found it under
Wine: a storm of clients that reset their connections left the gateway deaf.

Here the proactor's accept retries when the failure belongs to that one connection; any
other failure still reaches the loop as before.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from loguru import logger

#: accept failures that mean "this client left", not "the listener is broken"
CLIENT_GONE = {
    59,  # ERROR_UNEXP_NET_ERR (Wine)
    64,  # ERROR_NETNAME_DELETED
    1236,  # ERROR_CONNECTION_ABORTED
    10053,  # WSAECONNABORTED
    10054,  # WSAECONNRESET
}
#: a listener that fails this many times in a row without one good accept is broken
MAX_CONSECUTIVE = 1000


if sys.platform == "win32":

    def new_event_loop() -> asyncio.AbstractEventLoop:
        return asyncio.ProactorEventLoop(_RetryingProactor())

    class _RetryingProactor(asyncio.IocpProactor):
        def accept(self, listener: socket.socket):
            """Like IocpProactor.accept, but a client gone before the accept completed
            is skipped and the next connection awaited. Cancelling the returned task
            cancels the pending accept, as the loop does when the server closes."""
            return asyncio.ensure_future(self._accept_next(listener), loop=self._loop)

        async def _accept_next(self, listener: socket.socket):
            failures = 0
            while True:
                try:
                    return await super().accept(listener)
                except OSError as exc:
                    failures += 1
                    if (
                        getattr(exc, "winerror", None) not in CLIENT_GONE
                        or listener.fileno() == -1
                        or failures >= MAX_CONSECUTIVE
                    ):
                        raise
                    logger.debug("a client left before its connection was accepted: {}", exc)
