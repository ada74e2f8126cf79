"""A real upstream HTTP server on loopback, serving recorded transcripts and faults.

The upstream model id selects the behaviour (`text`, `tools`, `hang-before-headers`,
`reset-mid-stream`, ...). Everything after a `:` is ignored, so a test can make its
requests unique (`429-once:test-7`) and count them per key. Every request leaves a
`Seen` record that says, from the server's side, whether the peer closed the connection
before the answer was complete.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson

TRANSCRIPTS = Path(__file__).parent / "transcripts"


def transcript(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def sse_events(name: str) -> list[bytes]:
    """The events of a recorded SSE transcript, each with its blank-line terminator."""
    return [event + b"\n\n" for event in transcript(name).split(b"\n\n") if event.strip()]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict
    model: str = ""
    peer_closed: threading.Event = field(default_factory=threading.Event)
    #: wall-clock time (time.time()) the peer was seen closing, to compare with a browser's Date.now()
    peer_closed_at: float | None = None
    completed: threading.Event = field(default_factory=threading.Event)

    def mark_peer_closed(self) -> None:
        if self.peer_closed_at is None:
            self.peer_closed_at = time.time()
        self.peer_closed.set()


class Upstream:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.open_connections = 0
        #: connections ever accepted: a gateway that reuses its connections opens few
        self.accepted_connections = 0
        #: connections in the middle of a request (an idle keep-alive one is not counted)
        self.busy_connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upstream", daemon=True)
        self.port = 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Upstream:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, limit=64 * 1024 * 1024)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close_listener(self) -> None:
        """Refuse new connections from now on (called on the server's own loop)."""
        self._server.close()

    def requests_for(self, key: str) -> list[Seen]:
        return [s for s in self.seen if s.model == key]

    # -- HTTP/1.1 ------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        self.accepted_connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                body = orjson.loads(raw) if raw else {}
                seen = Seen(method, path, headers, body, model=model_of(path, body))
                self.seen.append(seen)
                self.busy_connections += 1
                try:
                    keep_alive = await self._answer(seen, reader, writer)
                finally:
                    self.busy_connections -= 1
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()

    async def _answer(self, seen: Seen, reader, writer) -> bool:
        key = seen.model.split(":", 1)[0]
        self.counts[seen.model] += 1
        count = self.counts[seen.model]
        stream = bool(seen.body.get("stream")) or ":streamGenerateContent" in seen.path
        watcher = asyncio.ensure_future(self._watch_peer(reader, seen))
        scenario = asyncio.ensure_future(Scenario(self, seen, writer, key, count, stream).run())
        try:
            await asyncio.wait([watcher, scenario], return_when=asyncio.FIRST_COMPLETED)
            if not scenario.done():  # the peer left first: stop serving it
                scenario.cancel()
                return False
            keep = scenario.result()
            seen.completed.set()
            return keep
        except (ConnectionError, OSError):
            seen.mark_peer_closed()
            return False
        finally:
            watcher.cancel()
            scenario.cancel()
            await asyncio.gather(watcher, scenario, return_exceptions=True)

    @staticmethod
    async def _watch_peer(reader: asyncio.StreamReader, seen: Seen) -> None:
        try:
            data = await reader.read(1)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            seen.mark_peer_closed()


# Gemini names the model in the path (`/models/gemini-x:generateContent`), Azure's classic
# URLs name the deployment (`/openai/deployments/<name>/chat/completions`)
_MODEL_IN_PATH = re.compile(r"/models/([^/:]+):|/openai/deployments/([^/]+)/")


def model_of(path: str, body: dict) -> str:
    match = _MODEL_IN_PATH.search(path)
    if match:
        from urllib.parse import unquote

        return unquote(match.group(1) or match.group(2))
    return str(body.get("model", ""))


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Scenario:
    def __init__(self, upstream: Upstream, seen: Seen, writer, key: str, count: int, stream: bool):
        self.upstream, self.seen, self.writer = upstream, seen, writer
        self.key, self.count, self.stream = key, count, stream

    async def head(
        self, status: int, content_type: str, extra: dict[str, str] | None = None, length: int | None = None
    ) -> None:
        reason = {
            200: "OK",
            429: "Too Many Requests",
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            401: "Unauthorized",
            400: "Bad Request",
            302: "Found",
        }.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}", f"content-type: {content_type}"]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        lines.append(f"content-length: {length}" if length is not None else "transfer-encoding: chunked")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    async def chunk(self, data: bytes) -> None:
        self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await self.writer.drain()

    async def end_chunks(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()

    async def json(
        self, status: int, payload: bytes, headers: dict[str, str] | None = None, content_type: str = "application/json"
    ) -> bool:
        await self.head(status, content_type, headers, length=len(payload))
        self.writer.write(payload)
        await self.writer.drain()
        return True

    async def events(self, events: list[bytes], delay: float = 0.0) -> None:
        await self.head(200, "text/event-stream")
        for event in events:
            await self.chunk(event)
            if delay:
                await asyncio.sleep(delay)

    async def endless_line(self) -> bool:
        await self.head(200, "text/event-stream")
        await self.chunk(b'data: {"x":"')
        block = b"a" * 2**20
        for _ in range(300):
            await self.chunk(block)
        return False

    async def hang(self) -> bool:
        await asyncio.sleep(3600)
        return False

    async def run(self) -> bool:
        k = self.key
        if self.seen.path.endswith("/v1/messages"):
            return await self.anthropic()
        if self.seen.path.endswith("/v1/messages/count_tokens"):
            return await self.json(200, b'{"input_tokens":%d}' % len(orjson.dumps(self.seen.body["messages"])))
        if ":generateContent" in self.seen.path or ":streamGenerateContent" in self.seen.path:
            return await self.gemini()
        if "/openai/" in self.seen.path:
            return await self.azure()
        if self.seen.path.split("?")[0].endswith("/responses"):
            return await self.responses()
        if self.seen.path.endswith("/embeddings"):
            return await self.json(200, transcript("openai_embeddings.json"))
        if k in ("text", "tools"):
            if not self.stream:
                return await self.json(200, transcript(f"openai_{k}.json"))
            await self.events(sse_events(f"openai_{k}.sse"))
            await self.end_chunks()
            return True
        if k == "one-write":  # the whole stream in one write, of a declared length (as nginx serves a file)
            return await self.json(200, b"".join(sse_events("openai_text.sse")), content_type="text/event-stream")
        if k == "slow-end":  # [DONE] first, the end of the chunked body a moment later
            await self.events(sse_events("openai_text.sse"))
            await asyncio.sleep(0.02)
            await self.end_chunks()
            return True
        if k == "never-ends":  # [DONE], then a body that never ends (the connection cannot be reused)
            await self.events(sse_events("openai_text.sse"))
            return await self.hang()
        if k == "endless-line":  # one event that never ends: up to 300 MB without a line break
            return await self.endless_line()
        if k == "huge-json":  # a whole answer of 300 MB (until the peer gives up on it)
            await self.head(200, "application/json", length=300 * 2**20)
            block = b" " * 2**20
            for _ in range(300):
                self.writer.write(block)
                await self.writer.drain()
            return False
        if k == "odd-completion":  # a completion whose fields are not what the spec says
            odd = {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "m",
                "usage": {"prompt_tokens": "x", "completion_tokens": [1]},
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": ["stop"],
                        "message": {
                            "role": "assistant",
                            "content": [{"type": "text", "text": "list content"}],
                            "tool_calls": "nope",
                        },
                    }
                ],
            }
            return await self.json(200, orjson.dumps(odd))
        if k == "json-anyway":  # a server that ignores `stream` and answers at once
            return await self.json(200, transcript("openai_text.json"))
        if k == "echo-body":
            reply = {
                "id": "chatcmpl-echo",
                "object": "chat.completion",
                "created": 1,
                "model": self.seen.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": orjson.dumps(self.seen.body).decode()},
                        "finish_reason": "stop",
                    }
                ],
            }
            return await self.json(200, orjson.dumps(reply))
        if k == "rate-limit":
            return await self.json(
                429,
                b'{"error":{"message":"Rate limit reached","type":"requests",'
                b'"param":null,"code":"rate_limit_exceeded"}}',
                {"retry-after": "0"},
            )
        if k == "429-once":
            if self.count == 1:
                return await self.json(
                    429, b'{"error":{"message":"slow down","type":"requests"}}', {"retry-after": "0.2"}
                )
            return await Scenario(self.upstream, self.seen, self.writer, "text", 1, self.stream).run()
        if k == "503-then-close":
            # answer 503, then stop listening: the retry finds the connection refused
            self.upstream.close_listener()
            await self.head(503, "application/json", {"connection": "close"}, length=2)
            self.writer.write(b"{}")
            await self.writer.drain()
            return False
        if k == "429-slow":
            return await self.json(429, b'{"error":{"message":"slow down"}}', {"retry-after": "2"})
        if k == "headers-then-silence":
            await self.head(200, "text/event-stream")
            return await self.hang()
        if k == "bad-utf8-split":
            first = sse_events("openai_text.sse")[0]
            # a valid 3-byte character and an invalid byte, each split across two writes
            event = b'data: {"choices":[{"index":0,"delta":{"content":"ok \xe4\xbd\xa0 bad \xff end"}}]}\n\n'
            cut = event.index(b"\xbd")
            await self.events([first, event[:cut], event[cut:]])
            await self.chunk(b"data: [DONE]\n\n")
            await self.end_chunks()
            return True
        if k == "huge-line":
            big = "x" * (10 * 1024 * 1024)
            event = b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": big}}]}) + b"\n\n"
            await self.events([sse_events("openai_text.sse")[0], event, b"data: [DONE]\n\n"])
            await self.end_chunks()
            return True
        if k == "byte-drip":
            body = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"drip"}}]}\n\ndata: [DONE]\n\n'
            await self.head(200, "text/event-stream")
            delay = float(self.seen.model.split(":")[1]) / 1000 if ":" in self.seen.model else 0.1
            for i in range(len(body)):
                await self.chunk(body[i : i + 1])
                await asyncio.sleep(delay)
            await self.end_chunks()
            return True
        if k == "gzip-sse":
            import gzip

            body = gzip.compress(transcript("openai_text.sse"))
            await self.head(200, "text/event-stream", {"content-encoding": "gzip"}, length=len(body))
            self.writer.write(body)
            await self.writer.drain()
            return True
        if k == "text-plain-sse":
            return await self.json(200, transcript("openai_text.sse"), content_type="text/plain")
        if k == "redirect":
            return await self.json(302, b"", {"location": "http://127.0.0.1:1/elsewhere"})
        if k == "429-no-retry-after":
            return await self.json(429, b'{"error":{"message":"Too many requests"}}')
        if k == "503-retry-after":
            return await self.json(503, b'{"error":{"message":"busy"}}', {"retry-after": "1"})
        if k == "error-event":
            await self.events(
                sse_events("openai_text.sse")[:2]
                + [b'data: {"error":{"message":"The model overloaded mid-answer","type":"server_error"}}\n\n']
            )
            await self.end_chunks()
            return True
        if k == "late-answer":
            await asyncio.sleep(1.0)
            return await self.json(200, transcript("openai_text.json"))
        if k == "error-500":
            return await self.json(500, b'{"error":{"message":"The server had an error","type":"server_error"}}')
        if k == "error-503":
            return await self.json(503, b"")
        if k == "error-html":
            return await self.json(
                502,
                b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
                content_type="text/html",
            )
        if k == "error-401":
            return await self.json(401, transcript("openai_error_401.json"))
        if k == "error-quoting-model":  # "The model '<what you sent>' does not exist", as OpenAI says
            message = f"The model '{self.seen.model}' does not exist"
            return await self.json(404, orjson.dumps({"error": {"message": message, "code": "model_not_found"}}))
        if k == "error-quoting-headers":
            # an upstream whose error message quotes every header it was sent, as some do
            quoted = "; ".join(f"{name}={value}" for name, value in self.seen.headers.items())
            return await self.json(400, orjson.dumps({"error": {"message": f"bad request ({quoted})"}}))
        if k == "quote-key":  # an upstream that repeats the credential it was sent
            key = self.seen.headers.get("authorization", "").removeprefix("Bearer ")
            return await self.json(401, orjson.dumps({"error": {"message": f"Incorrect API key provided: {key}"}}))
        if k == "error-400":
            return await self.json(
                400,
                b'{"error":{"message":"Invalid value for temperature","type":'
                b'"invalid_request_error","param":"temperature","code":"invalid_value"}}',
            )
        if k == "hang-before-headers":
            return await self.hang()
        if k == "reset-before-headers":
            _reset(self.writer)
            return False
        if k == "hang-mid-stream":
            await self.events(sse_events("openai_text.sse")[:2])
            return await self.hang()
        if k == "reset-mid-stream":
            await self.events(sse_events("openai_text.sse")[:2])
            await asyncio.sleep(0.05)
            _reset(self.writer)
            return False
        if k == "no-done":
            await self.events(sse_events("openai_text.sse")[:-1])
            await self.end_chunks()
            return True
        if k == "malformed":
            await self.events(sse_events("openai_text.sse")[:1] + [b"data: {not json\n\n"])
            await self.end_chunks()
            return True
        if k == "html-200":
            return await self.json(200, b"<html>hello</html>", content_type="text/html")
        if k in ("slow-drip", "long-stream"):
            first, *middle = sse_events("openai_text.sse")[:2]
            body = [first] + middle * (10 if k == "slow-drip" else 400)
            await self.events(body, delay=0.2 if k == "slow-drip" else 0.02)
            for event in sse_events("openai_text.sse")[-3:]:
                await self.chunk(event)
            await self.end_chunks()
            return True
        if k == "endless":
            # streams until the peer leaves (bounded: ten minutes), as a model that is never done
            first, event = sse_events("openai_text.sse")[:2]
            await self.events([first])
            for _ in range(30_000):
                await self.chunk(event)
                await asyncio.sleep(0.02)
            return False
        if k == "flood":
            # 8 KB events as fast as the peer takes them (bounded: 64 MB), as a fast model
            first, event = sse_events("openai_text.sse")[:2]
            big = event.replace(b'"content":"', b'"content":"' + b"x" * 8000, 1)
            await self.events([first])
            for _ in range(8000):
                await self.chunk(big)
            return False
        if k == "slow-json":
            await asyncio.sleep(30)
            return await self.json(200, transcript("openai_text.json"))
        return await self.json(
            404,
            b'{"error":{"message":"The model does not exist","type":'
            b'"invalid_request_error","param":"model","code":"model_not_found"}}',
        )

    async def anthropic(self) -> bool:
        """Anthropic's Messages API, from recorded transcripts."""
        k = self.key
        if k in ("text", "tools"):
            if not self.stream:
                return await self.json(200, transcript(f"anthropic_{k}.json"))
            await self.events(sse_events(f"anthropic_{k}.sse"))
            await self.end_chunks()
            return True
        if k == "endless-line":
            return await self.endless_line()
        if k == "endless":
            events = sse_events("anthropic_text.sse")
            await self.events(events[:2])
            for _ in range(30_000):
                await self.chunk(events[3])
                await asyncio.sleep(0.02)
            return False
        if k == "slow-end":
            await self.events(sse_events("anthropic_text.sse"))
            await asyncio.sleep(0.02)
            await self.end_chunks()
            return True
        if k == "error-midstream":
            await self.events(sse_events("anthropic_error_midstream.sse"))
            await self.end_chunks()
            return True
        if k == "overloaded":
            return await self.json(529, transcript("anthropic_overloaded.json"))
        if k == "long-stream":
            events = sse_events("anthropic_text.sse")
            deltas = [e for e in events if b"text_delta" in e]
            await self.events(events[:3] + deltas * 400, delay=0.02)
            await self.end_chunks()
            return True
        if k == "rate-limit":
            return await self.json(
                429,
                b'{"type":"error","error":{"type":"rate_limit_error","message":'
                b'"Number of requests has exceeded your rate limit"}}',
                {"retry-after": "7"},
            )
        if k == "bad-request":
            return await self.json(
                400,
                b'{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}',
            )
        return await self.json(404, b'{"type":"error","error":{"type":"not_found_error","message":"model: x"}}')

    async def responses(self) -> bool:
        """OpenAI's own Responses API, for passthrough."""
        k = self.key
        if k == "text":
            if not self.stream:
                return await self.json(200, transcript("openai_responses_text.json"))
            await self.events(sse_events("openai_responses_text.sse"))
            await self.end_chunks()
            return True
        if k == "failed-midstream":
            failed = (
                b'event: response.failed\ndata: {"type":"response.failed","sequence_number":5,"response":'
                b'{"id":"resp_68a1f0c2d4e0819a9c3b2f1e0d7c6b5a","object":"response","status":"failed",'
                b'"error":{"code":"server_error","message":"The model failed mid-answer"},"output":[]}}\n\n'
            )
            await self.events(sse_events("openai_responses_text.sse")[:5] + [failed])
            await self.end_chunks()
            return True
        if k == "long-stream":
            events = sse_events("openai_responses_text.sse")
            await self.events(events[:5] + [events[4]] * 400, delay=0.02)
            await self.end_chunks()
            return True
        return await self.json(
            404,
            b'{"error":{"message":"The model does not exist","type":'
            b'"invalid_request_error","param":"model","code":"model_not_found"}}',
        )

    async def gemini(self) -> bool:
        """Google Gemini's generateContent / streamGenerateContent?alt=sse."""
        k = self.key
        if k in ("text", "tools"):
            if not self.stream:
                return await self.json(200, transcript(f"gemini_{k}.json"))
            body = transcript(f"gemini_{k}.sse")
            await self.head(200, "text/event-stream")
            await self.chunk(body[: len(body) // 2])  # an event split across two writes
            await self.chunk(body[len(body) // 2 :])
            await self.end_chunks()
            return True
        if k in ("prompt-blocked", "answer-blocked"):
            answer = transcript(f"gemini_{k.replace('-', '_')}.json").strip()
            if not self.stream:
                return await self.json(200, answer)
            await self.head(200, "text/event-stream")
            await self.chunk(b"data: " + answer + b"\r\n\r\n")
            await self.end_chunks()
            return True
        if k == "safety-midstream":
            await self.head(200, "text/event-stream")
            await self.chunk(transcript("gemini_safety_midstream.sse"))
            await self.end_chunks()
            return True
        if k == "long-stream":
            first, *rest = transcript("gemini_text.sse").split(b"\r\n\r\n")
            await self.events([first + b"\r\n\r\n"] * 400, delay=0.02)
            await self.end_chunks()
            return True
        if k == "no-finish":
            await self.head(200, "text/event-stream")
            await self.chunk(transcript("gemini_text.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n")
            await self.end_chunks()
            return True
        if k in ("error-400", "error-429", "error-404", "error-503"):
            status = int(k.split("-")[1])
            return await self.json(status, transcript(f"gemini_{k.replace('-', '_')}.json"))
        return await self.json(404, transcript("gemini_error_404.json"))

    async def azure(self) -> bool:
        """Azure OpenAI: the key is the deployment (classic URLs) or the model (/openai/v1)."""
        k = self.key
        if k == "text":
            if not self.stream:
                return await self.json(200, transcript("azure_text.json"))
            await self.events(sse_events("azure_text.sse"))
            await self.end_chunks()
            return True
        if k == "tools":
            if not self.stream:
                return await self.json(200, transcript("openai_tools.json"))
            await self.events(sse_events("openai_tools.sse"))
            await self.end_chunks()
            return True
        if k == "content-filter":
            return await self.json(400, transcript("azure_content_filter.json"))
        if k == "unauthorized":
            return await self.json(401, transcript("azure_error_401.json"))
        if k == "rate-limit":
            return await self.json(429, transcript("azure_error_429.json"), {"retry-after": "6"})
        return await self.json(404, transcript("azure_deployment_not_found.json"))
