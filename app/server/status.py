"""The status page for a person running the executable: `GET /` (one HTML file, no data,
no token needed) and its data, `GET /admin/status` (token-protected like the rest)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from functools import cache
from importlib import resources
from typing import Any

from sanic import HTTPResponse, Request, Sanic

from ..redact import Redactor
from .routes import accounted, json_response
from .state import Gateway

PAGE_PATH = "/"
DATA_PATH = "/admin/status"

# Everything is inline and the data comes from this origin: nothing else may load.
_PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@cache
def page_html() -> bytes:
    """The page, from the package data (collected into the frozen build by the spec)."""
    return resources.files(__package__).joinpath("status.html").read_bytes()


def status_payload(gateway: Gateway) -> dict[str, Any]:
    """Everything the page shows, as plain JSON values (credentials masked)."""
    config = gateway.config
    table = gateway.router.table
    uptime = time.monotonic() - gateway.started
    payload = {
        "version": gateway.version,
        "pid": os.getpid(),
        "url": gateway.url,
        "started_at": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=uptime)).isoformat(timespec="seconds"),
        "uptime_s": round(uptime, 1),
        "log_dir": gateway.log_dir,
        "config": config.source,
        "token_required": gateway.token is not None,
        "providers": [
            {
                "name": p.name,
                "type": p.type,
                "enabled": not p.missing_env,
                "missing_env": list(p.missing_env),
                "base_url": p.base_url,
                "models": list(p.models),
            }
            for p in config.providers
        ],
        "aliases": {name: list(chain) for name, chain in config.aliases.items()},
        "models": [{"id": model_id, "owned_by": owner} for model_id, owner in table.model_ids()],
        "inflight": len(gateway.inflight - {asyncio.current_task()}),  # not this request itself
        "recent": gateway.recent.newest_first(),
        "previous_exit": gateway.previous_exit,
    }
    return masked(payload, gateway.redact)


def masked(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: masked(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item, redact) for item in value]
    return value


def register_status_routes(app: Sanic, gateway: Gateway) -> None:
    async def page(request: Request) -> HTTPResponse:
        return HTTPResponse(page_html(), content_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)

    async def data(request: Request) -> HTTPResponse:
        return json_response(status_payload(gateway), headers={"cache-control": "no-store"})

    app.route(PAGE_PATH, methods=["GET"], name="status_page")(accounted(gateway, page))  # type: ignore[arg-type]
    app.route(DATA_PATH, methods=["GET"], name="status_data")(accounted(gateway, data))  # type: ignore[arg-type]
