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
printable (CR, LF and NUL are not); a clean value goes out as it is. It also leaves out
the empty `alt-svc` header without copying the headers first, as protocol.py must for
responses Sanic makes itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sanic import HTTPResponse, Sanic
from sanic.helpers import has_message_body
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
    """Sanic's response, for every response the gateway makes: its headers are cleaned as
    above, and the empty `alt-svc` Sanic adds to each is left out (its start-up rewriting,
    which a frozen build cannot run, would remove it; see protocol.py)."""

    __slots__ = ()

    @property
    def processed_headers(self) -> Iterator[tuple[bytes, bytes]]:
        if has_message_body(self.status):
            self.headers.setdefault("content-type", self.content_type)
        return (
            (_clean_header(name).encode("ascii"), _clean_header(f"{value}").encode(errors="surrogateescape"))
            for name, value in self.headers.items()
            if value != "" or name != "alt-svc"
        )
