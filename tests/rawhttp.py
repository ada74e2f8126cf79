"""Raw sockets for what an HTTP client library hides: disconnects at chosen moments."""

from __future__ import annotations

import socket
import struct

import orjson


def post(
    port: int,
    path: str,
    body: dict | bytes,
    *,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> socket.socket:
    """Send a POST and return the open socket, without reading anything."""
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(payload)}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    return sock


def send_raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes, read until the server closes or goes quiet; return what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def abort(sock: socket.socket) -> None:
    """Close with a TCP RST, as a killed browser tab or a crashed client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def leave(sock: socket.socket, how: str) -> None:
    if how == "close":
        sock.close()
    elif how == "reset":
        abort(sock)
    elif how == "half-close":
        sock.shutdown(socket.SHUT_WR)
    else:
        raise ValueError(how)


def storm(client_fn, port: int, count: int, concurrency: int = 16, seed: int = 0) -> None:
    """Run `client_fn(port, rng)` `count` times, `concurrency` at once, each with its own
    seeded random generator; returns when all are done (each is bounded by socket timeouts)."""
    import random
    import threading
    import time

    rng = random.Random(seed)
    threads: list[threading.Thread] = []
    for _ in range(count):
        while sum(t.is_alive() for t in threads) >= concurrency:
            time.sleep(0.005)
        thread = threading.Thread(target=client_fn, args=(port, random.Random(rng.random())))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(10)
