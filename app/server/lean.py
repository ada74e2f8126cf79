"""Sanic without costs the gateway has no use for: lifecycle signals nobody listens to,
and header values cleaned character by character.

Signals.
Sanic dispatches about ten `http.*` signals per request (begin, read_head, request,
handle, response, send, complete, ...). Each dispatch looks the event up in the signal
router, and an event with no handler is found missing by raising and catching an
exception: about a tenth of the gateway's CPU per request. Sanic's "touchup" step removes
those calls from its own source at start, but it reads source code, which a frozen build
lacks, so it is off here (see create_app). This does the same at run time: an `http.*`
event with no registered handler is not dispatched at all.

Headers. Sanic strips CR, LF and NUL from each header name and value of a response with
`str.translate`, a dict lookup per character: about 6 us for a streamed answer's headers.
`Response` does the same, but only for a value that holds a character that is not
printable (CR, LF and NUL are not); a clean value goes out as it is.
"""

from __future__ import annotations

from typing import Any

from sanic import HTTPResponse, Sanic
from sanic.response.types import HEADER_TRANSLATION_TABLE
from sanic.signals import Event

_HTTP_EVENTS = frozenset(e.value for e in Event if e.value.startswith("http."))


async def _nothing() -> None:
    return None


class GatewaySanic(Sanic):
    __slots__ = ("_unheard",)  # Sanic refuses attributes it does not know of

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._unheard: frozenset[str] | None = None

    def dispatch(self, event: str, **kwargs: Any) -> Any:
        unheard = self._unheard
        if unheard is None:
            if not self.signal_router.finalized:  # handlers may still be added
                return super().dispatch(event, **kwargs)
            heard = {route.name for route in self.signal_router.routes}
            unheard = self._unheard = _HTTP_EVENTS - heard
        if event in unheard:
            return _nothing()
        return super().dispatch(event, **kwargs)


def _clean_header(value: str) -> str:
    return value if value.isprintable() else value.translate(HEADER_TRANSLATION_TABLE)


class Response(HTTPResponse):
    """Sanic's response, with the header cleaning above; every response the gateway makes."""

    __slots__ = ()
    _sanitize_header_value = staticmethod(_clean_header)
