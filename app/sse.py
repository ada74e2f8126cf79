"""Server-sent events as the OpenAI SDKs read them: encoding, and a scanner for upstream streams.

The scanner passes an OpenAI-compatible upstream's events through as the bytes they came
in, and decodes only the few that matter to the gateway: `[DONE]`, an in-band error, the
usage chunk, and anything not framed the plain way (`data: {...}` on one line). Lines are
split on CR, LF and CRLF only, as the SSE spec says (a parser on `aiter_lines()` would also
split on U+2028, which JSON strings may hold raw).
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

#: no single event may hold more than this (an upstream that never ends an event)
MAX_EVENT = 16 * 2**20


def event(payload: Any) -> bytes:
    """One `data:` event holding one line of JSON (orjson never writes a raw newline)."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class Framed:
    """Complete events, framed for the client's socket as they are: a stream item that the
    relay writes without encoding it. `usage` is the usage object one of them carried;
    `final` says the upstream's `[DONE]` came right after them: nothing but the end of its
    body is left, so the relay can send them and the stream's end in one write."""

    __slots__ = ("data", "usage", "final")

    def __init__(self, data: bytes, usage: dict[str, Any] | None = None, final: bool = False):
        self.data = data
        self.usage = usage
        self.final = final


def chunks_of(framed: Framed) -> list[dict[str, Any]]:
    """The chunks in framed events (each `data: <json>\n\n`, as the scanner leaves them),
    for a writer that translates chunks into another dialect."""
    return [orjson.loads(e[6:]) for e in framed.data.split(b"\n\n") if e.startswith(b"data: ")]


#: what a provider's stream yields: a chunk to encode, or events already framed
StreamItem = dict[str, Any] | Framed


class EventScanner:
    """Splits an upstream's SSE bytes into events and hands back the ones to forward, as bytes.

    `feed()` takes each read as it comes (events split anywhere, CR, LF or CRLF line ends)
    and returns the complete events worth forwarding, framed `data: <json>\\n\\n`. It stops
    at the first event that ends the stream and says why in `ended`:
      "done"      `data: [DONE]`: the upstream finished
      "error"     an in-band error (an `error` event, or a JSON object with a truthy
                  `error`); `error` holds (event name, decoded object)
      "malformed" an event that is not a JSON object, or one too large; `problem` says which
    The events before the one that ended it are still returned: they reached the gateway
    first, so the client sees them first. Comments (`: ping`), `id:` and `retry:` lines are
    the upstream's business and are dropped; the gateway sends its own heartbeats.

    Cost: a run of plain events costs three substring searches over the whole read and goes
    out as one slice of it; an event after the run costs a few searches of its own. Only
    events holding `"error"`, other framing, or a non-null `"usage"` where servers put the
    usage chunk (the read's last event, or the one before `[DONE]`) are decoded."""

    def __init__(self, max_event: int = MAX_EVENT):
        self.max_event = max_event
        self.ended: str | None = None
        self.error: tuple[str, dict[str, Any]] | None = None
        self.problem = ""
        #: the last usage object seen (servers send it in the stream's last chunk)
        self.usage: dict[str, Any] | None = None
        self._pending: list[bytes] = []  # an event not complete yet, in pieces
        self._pending_size = 0
        self._cr = False  # the last read ended with CR: a LF first in the next belongs to it
        self._started = False

    def feed(self, data: bytes) -> bytes:
        if self.ended is not None or not data:
            return b""
        if not self._started:
            self._started = True
            if data.startswith(b"\xef\xbb\xbf"):  # a byte order mark may open the stream
                data = data[3:]
        if self._cr:
            self._cr = False
            if data.startswith(b"\n"):
                data = data[1:]
        if b"\r" in data:  # rare: normalise every line end to LF
            self._cr = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._pending:
            tail = self._pending[-1]
            if b"\n\n" not in data and not (tail.endswith(b"\n") and data.startswith(b"\n")):
                return self._keep(data)  # still inside the same event: search only what is new
            buf = b"".join(self._pending) + data
            self._pending, self._pending_size = [], 0
        else:
            buf = data
        end = buf.rfind(b"\n\n")
        if end < 0:
            return self._keep(buf)
        out = self._events(buf, end + 2)
        if self.ended is None and end + 2 < len(buf):
            self._keep(buf[end + 2 :])
        return out

    def _keep(self, piece: bytes) -> bytes:
        if piece:
            self._pending.append(piece)
            self._pending_size += len(piece)
            if self._pending_size > self.max_event:
                self._end_malformed(f"an event larger than {self.max_event // 2**20} MB")
                self._pending, self._pending_size = [], 0
        return b""

    def _events(self, buf: bytes, stop: int) -> bytes:
        """The events to forward out of buf[:stop], which ends at an event boundary."""
        parts: list[bytes] = []
        last = _last_event(buf, stop)
        # buf[run:start] are plain events, forwarded as one slice; most reads are plain
        # from their start up to the usage chunk or [DONE], found without a loop
        run, start = 0, _plain_run(buf, stop, last)
        while start < stop:
            end = buf.find(b"\n\n", start, stop)
            if end < 0:
                break  # only a stray line end is left before `stop`
            if (
                buf.startswith(b"data: {", start)
                and buf[end - 1] == 0x7D  # "}"
                and buf.find(b"\n", start, end) < 0
                and buf.find(b'"error"', start, end) < 0
                and not (_may_hold_usage(buf, start, end, last) and self._usage_in(buf, start, end))
            ):
                start = end + 2
                continue
            # anything else: flush the plain run, then look at this event closely
            if run < start:
                parts.append(buf[run:start])
            framed = self._decode(buf[start:end])
            if framed:
                parts.append(framed)
            start = run = end + 2
            if self.ended is not None:
                break
        if run < start:
            parts.append(buf[run:start])
        out = parts[0] if len(parts) == 1 else b"".join(parts)
        if not out.isascii():
            try:
                out.decode()
            except UnicodeDecodeError:  # as a text decoder would: U+FFFD for each bad sequence
                out = out.decode("utf-8", "replace").encode()
        return out

    def _usage_in(self, buf: bytes, start: int, end: int) -> bool:
        """True if the event has a `"usage"` whose value is not null (OpenAI sends
        `"usage":null` in every chunk when usage was asked for)."""
        at = buf.find(b'"usage"', start, end)
        if at < 0:
            return False
        return not buf[at + 7 : at + 16].lstrip(b" \t:").startswith(b"null")

    def _decode(self, raw: bytes) -> bytes:
        """One event the plain path did not take: parse its fields and decide."""
        name, payload = _fields(raw)
        if payload is None or not payload:
            return b""  # a comment, or fields with no data: nothing for the client
        if payload == b"[DONE]":
            self.ended = "done"
            return b""
        try:
            obj = orjson.loads(payload.decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            self._end_malformed("a malformed stream event")
            return b""
        if not isinstance(obj, dict):
            self._end_malformed("a stream event that is not an object")
            return b""
        if name == b"error" or obj.get("error"):
            self.ended = "error"
            self.error = (name.decode("utf-8", "replace"), obj)
            return b""
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        if raw.startswith(b"data: {") and raw.endswith(b"}") and b"\n" not in raw:
            return raw + b"\n\n"  # plain after all (it held "error" or "usage" in passing)
        return event(obj)  # re-framed on one line

    def _end_malformed(self, problem: str) -> None:
        self.ended = "malformed"
        self.problem = problem


def _last_event(buf: bytes, stop: int) -> int:
    """Where the last event of buf[:stop] that is not `[DONE]` starts (0: the first one).

    Usage is looked for there and in the event just before `[DONE]` only: every server
    sends it in its stream's last chunk (one that sends it in each chunk sends the running
    total, so the last one is what counts), and a read that holds that chunk ends with it,
    or with [DONE] after it. So `"usage"` is not searched for through the whole of a read."""
    last = _event_before(buf, stop)
    if last and buf.startswith(b"data: [DONE]", last):
        last = _event_before(buf, last)
    return last


def _may_hold_usage(buf: bytes, start: int, end: int, last: int) -> bool:
    """Whether the event at buf[start:end] is one that usage is looked for in: the last of
    the read, or the one just before `[DONE]` (see `_last_event`)."""
    return start == last or buf.startswith(b"data: [DONE]", end + 2)


def _event_before(buf: bytes, end: int) -> int:
    """Where the event that ends at `end` (just past its blank line) starts."""
    at = buf.rfind(b"\n\n", 0, end - 2)
    return at + 2 if at >= 0 else 0


def _plain_run(buf: bytes, stop: int, last: int) -> int:
    """Where the run of plain events (`data: {...}` on one line, no `"error"`, and in the
    last event, at `last`, no `"usage"` that is not null) that opens buf[:stop] ends, at an
    event boundary: three searches over the bytes, whatever the number of events, and a
    few over the last events. The per-event loop takes over from there (the usage chunk,
    `[DONE]`, anything odd). A run it cannot vouch for is 0 long, and the loop looks at
    every event."""
    cut = stop
    final = _event_before(buf, stop)  # where the read's very last event starts
    if buf.startswith(b"data: [DONE]", final):  # how a stream's last read ends
        cut = final
    at = buf.find(b'"error"', 0, cut)
    if at >= 0:
        cut = at
    if last < cut and buf.find(b'"usage"', last, cut) >= 0:
        cut = last  # the loop decides whether it is a usage object or `"usage":null`
    end = buf.rfind(b"\n\n", 0, cut) + 2
    if end < len(b"data: {}\n\n") or not buf.startswith(b"data: {") or buf[end - 3] != 0x7D:  # "}"
        return 0
    # every line end in the run belongs to a boundary `}\n\ndata: {` between two events,
    # or to the run's last `}\n\n`: so each event is one line, `data: {...}`
    return end if _line_ends(buf, end) == 2 * buf.count(b"}\n\ndata: {", 0, end) + 2 else 0


def _line_ends(buf: bytes, end: int) -> int:
    """How many LF buf[:end] holds. `bytes.count` of one byte tests every byte in a loop;
    deleting it with `replace` finds each one with memchr, twice as fast for a stream's
    few line ends per hundred bytes. Not for a huge event held whole: the copy would
    double it."""
    if len(buf) > _COPY_LIMIT:
        return buf.count(b"\n", 0, end)
    return len(buf) - len(buf.replace(b"\n", b"")) - buf.count(b"\n", end)


_COPY_LIMIT = 2**20


def _fields(raw: bytes) -> tuple[bytes, bytes | None]:
    """An event's name and its data lines joined by LF (None: no data line at all)."""
    name = b""
    data: list[bytes] = []
    for line in raw.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value
    return name, b"\n".join(data) if data else None
