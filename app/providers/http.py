"""The one shared HTTP client for every HTTP provider."""

from __future__ import annotations

import httpx

from ..config import Timeouts

# Local upstreams (Ollama, LM Studio, a test server) must never go through a system proxy:
# httpx honours the proxy settings of the OS but not their bypass list.
_DIRECT = {
    "all://127.0.0.1": None,
    "all://localhost": None,
    "all://[::1]": None,
}


def new_client(timeouts: Timeouts) -> httpx.AsyncClient:
    """A pooled client; reads are bounded per request by the router's own deadlines."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=timeouts.connect, read=None, write=timeouts.connect,
                              pool=timeouts.connect),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30),
        follow_redirects=False,
        trust_env=True,
        mounts=_DIRECT,
        headers={"user-agent": "ai-gateway"},
    )
