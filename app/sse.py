"""Server-sent events as the OpenAI SDKs read them.

Only encoding lives here: upstream streams are parsed with httpx-sse in the providers,
which splits lines on CR, LF and CRLF only, as the SSE spec says (a parser on
`aiter_lines()` would also split on U+2028, which JSON strings may hold raw).
"""

from __future__ import annotations

from typing import Any

import orjson

#: sent only when the upstream really finished
DONE = b"data: [DONE]\n\n"
#: a comment: both SDKs ignore it, and it keeps idle-timeouts of proxies and clients at bay
PING = b": ping\n\n"

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def event(payload: Any) -> bytes:
    """One `data:` event holding one line of JSON (orjson never writes a raw newline)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"
