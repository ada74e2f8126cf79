"""Small helpers the test modules share (test modules never import each other)."""

from __future__ import annotations

import sys
import time

import orjson

#: the gateway token the security tests set; the session's log check looks for it too
GATEWAY_TOKEN = "gw-token-Zx81-secret-value"


def collect(stream) -> tuple[str, list]:
    """The text and the chunks of an SDK stream."""
    text, chunks = "", []
    for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices:
            text += choice.delta.content or ""
    return text, chunks


def wait_until(predicate, timeout: float = 5) -> bool:
    """True once `predicate()` holds, False if it still does not after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for_request(upstream, key: str, timeout: float = 5):
    """The upstream's record of the request for model `key`, once it has arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = upstream.requests_for(key)
        if seen:
            return seen[-1]
        time.sleep(0.01)
    raise AssertionError(f"the upstream never saw {key}")


def openai_provider(name: str, base_url: str, models: str = '["*"]', extra: str = "") -> str:
    """A `[providers.NAME]` table of type openai, as the tests' configs repeat it."""
    return f'\n[providers.{name}]\ntype = "openai"\nbase_url = "{base_url}"\nmodels = {models}\n{extra}'


def under_wine() -> bool:
    """Whether this Windows process runs under Wine (its ntdll exports wine_get_version)."""
    if sys.platform != "win32":
        return False
    import ctypes

    return hasattr(ctypes.windll.ntdll, "wine_get_version")


def stream_echo(url: str, content: str) -> str:
    """The text the built-in echo model streams back for `content`, read as raw SSE."""
    import httpx

    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": content}]}
    out = ""
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=20) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                for choice in orjson.loads(line[6:])["choices"]:
                    out += choice["delta"].get("content") or ""
    return out
