"""The SSE scanner of the byte relay, on hostile framing: whatever way the upstream's bytes are
cut or framed, the client gets the same events, `data: <one-line JSON>\\n\\n`, and the
stream ends for the same reason."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from app.errors import UpstreamProtocolError, UpstreamStatusError
from app.providers.openai_compat import passthrough
from app.sse import EventScanner, Framed


def chunk(content: str, **extra) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "up-model",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        **extra,
    }


def ev(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


USAGE = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
STREAM = (
    b": keep-alive comment\n\n"
    + ev(chunk("Hello", usage=None))
    + b"data: "
    + orjson.dumps(chunk(" wor"))
    + b"\r\n\r\n"  # CRLF
    + b"data: "
    + orjson.dumps(chunk("ld"))
    + b"\r\r"  # CR only
    + b"event: message\nid: 7\ndata: "
    + orjson.dumps(chunk("!"))
    + b"\n\n"
    + b'data: {"id":"c1",\n'
    + b'data:  "choices":[]}\n\n'  # JSON over two data lines
    + ev({"id": "c1", "choices": [], "usage": USAGE})
    + b"data: [DONE]\n\n"
    + ev(chunk("after the end"))
)
EXPECTED = [
    chunk("Hello", usage=None),
    chunk(" wor"),
    chunk("ld"),
    chunk("!"),
    {"id": "c1", "choices": []},
    {"id": "c1", "choices": [], "usage": USAGE},
]


def events_of(out: bytes) -> list[dict]:
    assert out.endswith(b"\n\n") or not out
    frames = out.split(b"\n\n")[:-1]
    for frame in frames:  # the client's framing: one data line of JSON per event
        assert frame.startswith(b"data: ") and b"\n" not in frame and b"\r" not in frame, frame
    return [orjson.loads(f[6:]) for f in frames]


def scan(pieces: list[bytes], scanner: EventScanner | None = None) -> tuple[bytes, EventScanner]:
    scanner = scanner or EventScanner()
    return b"".join(scanner.feed(p) for p in pieces), scanner


def test_a_whole_stream_in_one_read():
    out, scanner = scan([STREAM])
    assert events_of(out) == EXPECTED
    assert scanner.ended == "done" and scanner.usage == USAGE


def test_events_split_across_reads_at_every_byte():
    whole, _ = scan([STREAM])
    for at in range(1, len(STREAM)):
        out, scanner = scan([STREAM[:at], STREAM[at:]])
        assert out == whole, at
        assert scanner.ended == "done"
    out, scanner = scan([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert out == whole and scanner.ended == "done" and scanner.usage == USAGE


def test_plain_events_go_out_as_the_upstream_framed_them():
    raw = ev(chunk("a")) + ev(chunk("b", usage=None)) + ev(chunk("你好 \u2028 sep"))
    out, scanner = scan([raw])
    assert out == raw and scanner.ended is None and scanner.usage is None


def test_cr_only_line_ends_and_a_cr_at_the_end_of_a_read():
    out, _ = scan([b'data: {"a":1}\r', b"\r", b'data: {"b":2}\r\r'])
    assert events_of(out) == [{"a": 1}, {"b": 2}]
    # CR then LF in the next read is one line end, not two: the event is not cut short
    out, _ = scan([b'data: {"a":\r', b"\ndata: 1}\r\n\r\n"])
    assert events_of(out) == [{"a": 1}]


def test_comments_and_blank_lines_are_dropped():
    out, scanner = scan([b"\n\n: ping\n\n:\n\n\n\n" + b': note\ndata: {"a":1}\n: more\n\n\n\n\n'])
    assert events_of(out) == [{"a": 1}] and scanner.ended is None


def test_a_10_mb_event_in_small_reads():
    big = ev(chunk("x" * (10 * 2**20)))
    pieces = [big[i : i + 65536] for i in range(0, len(big), 65536)] + [b"data: [DONE]\n\n"]
    out, scanner = scan(pieces)
    assert out == big and scanner.ended == "done"


def test_an_event_larger_than_the_limit_ends_the_stream_as_malformed():
    scanner = EventScanner(max_event=1000)
    out, _ = scan([ev(chunk("ok")), b'data: {"a":"' + b"x" * 600, b"x" * 600], scanner)
    assert events_of(out) == [chunk("ok")]
    assert scanner.ended == "malformed" and "larger" in scanner.problem


def test_invalid_utf8_inside_an_event_becomes_replacement_characters():
    raw = b'data: {"c":"ok \xe4\xbd\xa0 bad \xff end"}\n\n'
    for at in range(1, len(raw)):
        out, _ = scan([raw[:at], raw[at:]])
        assert events_of(out) == [{"c": "ok \u4f60 bad \ufffd end"}], at


def test_an_error_event_after_content():
    error = {"error": {"message": "overloaded", "type": "server_error"}}
    out, scanner = scan([ev(chunk("a")) + ev(chunk("b")) + ev(error) + ev(chunk("never"))])
    assert events_of(out) == [chunk("a"), chunk("b")]
    assert scanner.ended == "error" and scanner.error == ("", error)
    # as an `event: error` with any data, in a read of its own
    out, scanner = scan([ev(chunk("a")), b'event: error\ndata: {"message":"boom"}\n\n'])
    assert events_of(out) == [chunk("a")]
    assert scanner.ended == "error" and scanner.error == ("error", {"message": "boom"})


def test_the_word_error_or_usage_in_content_is_not_an_error():
    payloads = [chunk('"error"'), chunk("usage"), chunk("x", finish_reason="error"), {"choices": [], "error": None}]
    out, scanner = scan([b"".join(ev(p) for p in payloads)])
    assert events_of(out) == payloads and scanner.ended is None and scanner.usage is None


@pytest.mark.parametrize(
    "bad, problem",
    [
        (b"data: {not json\n\n", "malformed"),
        (b"data: [1, 2]\n\n", "not an object"),
        (b'data: {"a":1} trailing\n\n', "malformed"),
    ],
)
def test_a_malformed_event_ends_the_stream_after_what_came_before(bad, problem):
    out, scanner = scan([ev(chunk("a")) + bad + ev(chunk("b"))])
    assert events_of(out) == [chunk("a")]
    assert scanner.ended == "malformed" and problem in scanner.problem


def run(pieces: list[bytes], body_ended: bool = False) -> tuple[list[Framed], BaseException | None]:
    async def go():
        async def source():
            for piece in pieces:
                yield piece

        got = []
        try:
            async for framed in passthrough(source(), "up", lambda: body_ended):
                got.append(framed)
        except Exception as exc:
            return got, exc
        return got, None

    return asyncio.run(go())


def test_passthrough_ends_normally_only_at_done():
    got, exc = run([ev(chunk("a")), ev({"choices": [], "usage": USAGE}) + b"data: [DONE]\n\n"])
    assert exc is None
    assert [g.usage for g in got] == [None, USAGE]
    got, exc = run([ev(chunk("a"))])
    assert isinstance(exc, UpstreamProtocolError) and "before [DONE]" in exc.message
    got, exc = run([ev(chunk("a")), b"data: {broken\n\n"])
    assert isinstance(exc, UpstreamProtocolError) and len(got) == 1


@pytest.mark.parametrize("body_ended", [True, False])
def test_events_read_with_done_are_final_only_when_the_body_has_ended(body_ended):
    # final: the relay sends them with the stream's end in one write. Not final while the
    # body's end is still on its way: that end is read first, then [DONE] goes out
    got, exc = run([ev(chunk("a")), ev(chunk("b")) + b"data: [DONE]\n\n"], body_ended)
    assert exc is None and [g.final for g in got] == [False, body_ended]
    got, exc = run([ev(chunk("a")), b"data: [DONE]\n\n"], body_ended)  # [DONE] in a read of its own
    assert exc is None and [(g.data, g.final) for g in got] == [(ev(chunk("a")), False)] + [(b"", True)] * body_ended
    got, exc = run([b"data: [DONE]\n\n"], body_ended)  # nothing at all: still nothing
    assert exc is None and got == []


def test_passthrough_raises_an_in_band_error_after_the_content_before_it():
    got, exc = run([ev(chunk("a")) + ev({"error": {"message": "overloaded", "code": "busy"}})])
    assert events_of(got[0].data) == [chunk("a")]
    assert isinstance(exc, UpstreamStatusError) and exc.code == "busy" and "overloaded" in exc.message


def test_usage_is_taken_from_the_last_chunk_of_a_read_or_the_one_before_done():
    running = [{"id": "c", "choices": [], "usage": {**USAGE, "completion_tokens": n}} for n in (1, 2, 3)]
    # a server that sends the running total in every chunk: each read's last one counts
    _, scanner = scan([ev(chunk("a")) + ev(running[0]), ev(chunk("b")) + ev(running[1])])
    assert scanner.usage == running[1]["usage"]
    # the usage chunk, then [DONE], then bytes after the end, all in one read
    _, scanner = scan([ev(chunk("a")) + ev(running[2]) + b"data: [DONE]\n\n" + ev(chunk("late"))])
    assert scanner.ended == "done" and scanner.usage == running[2]["usage"]
    # usage in the middle of a read, with more content after it, is passed on but not
    # looked for: the whole read is not searched for it (the stream's last chunk says it)
    out, scanner = scan([ev(running[0]) + ev(chunk("more"))])
    assert events_of(out) == [running[0], chunk("more")] and scanner.usage is None


def random_stream(rng) -> bytes:
    """Events of every kind the scanner tells apart, in random order and framing."""
    kinds = [
        lambda: ev(chunk(rng.choice(["a", "data: {x}", '"error"', "usage", "\u00e9\u2028"]))),
        lambda: ev(chunk("n", usage=None)),
        lambda: ev({"id": "c", "choices": [], "usage": USAGE}),
        lambda: b'data: {"choices":[],"usage": null}\n\n',  # spacing the run does not vouch for
        lambda: b'data: {"choices":[],"usage": {"total_tokens":2}}\n\n',
        lambda: b": ping\n\n",
        lambda: b": {a comment that ends like JSON}\n\n",
        lambda: b"data: " + orjson.dumps(chunk("cr")) + rng.choice([b"\r\r", b"\r\n\r\n"]),
        lambda: b'event: message\ndata: {"a":\ndata: 1}\n\n',
        lambda: b"\n",  # a stray line end between events
        lambda: ev(chunk("\xff")).replace(b"\xc3\xbf", b"\xff"),  # invalid UTF-8 inside
    ]
    ending = rng.choice([b"data: [DONE]\n\n", ev({"error": {"message": "boom"}}), b"data: [1]\n\n", b""])
    return b"".join(rng.choice(kinds)() for _ in range(rng.randrange(0, 30))) + ending


def test_the_run_found_without_a_loop_matches_the_event_by_event_scan(monkeypatch):
    # the same bytes out, and the same end, whether a read's plain run is found by the
    # whole-read searches or event by event: for random streams cut at random places
    import random

    import app.sse

    rng = random.Random(20261201)
    for _ in range(400):
        stream = random_stream(rng)
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randrange(0, 6)))) if stream else []
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        fast, fast_scanner = scan(pieces)
        with monkeypatch.context() as m:
            m.setattr(app.sse, "_plain_run", lambda buf, stop, last: 0)
            slow, slow_scanner = scan(pieces)
        assert fast == slow, stream
        for field in ("ended", "error", "problem", "usage"):
            assert getattr(fast_scanner, field) == getattr(slow_scanner, field), (field, stream)


@pytest.mark.parametrize(
    "buf",
    [
        b"",
        b"\n",
        b"\n" * 5000,
        ev(chunk("a")) * 300,
        b"x\ny\n\nz" * 1000,
        b"\n" * (2**20 + 10),  # past the size at which the copy is not made
        (ev(chunk("b")) * 6000)[: 2**20 + 7],
    ],
)
def test_line_ends_are_counted_as_bytes_count_would(buf):
    from app.sse import _line_ends

    for end in {0, len(buf) // 3, max(0, len(buf) - 1), len(buf)}:
        assert _line_ends(buf, end) == buf.count(b"\n", 0, end)
