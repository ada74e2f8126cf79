"""Who may talk to the gateway: token, Host, Origin and CORS, body type. Pure checks.

A local gateway is reachable by every web page the user opens (through DNS rebinding or
a cross-origin fetch), so Host and Origin are checked before anything else.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping

from ..errors import Forbidden, Unauthorized, UnsupportedMediaType
from ..text import printable

TAURI_ORIGINS = ("tauri://localhost", "http://tauri.localhost", "https://tauri.localhost")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})  # the rest: ipaddress
PREFLIGHT_HEADERS = ("authorization", "content-type", "x-request-id")
EXPOSED_HEADERS = "x-request-id, x-gateway-target, x-should-retry, retry-after"
PREFLIGHT_METHODS = "GET, POST, OPTIONS"
#: how long a browser may cache a preflight (Chromium caps it at 2 h, Firefox at 24 h)
PREFLIGHT_MAX_AGE = "7200"
#: an HTTP header name (RFC 9110 token); anything else is not echoed back
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
_MAX_ECHOED_HEADERS = 64


def host_name(host_header: str) -> str:
    """`[::1]:8765` -> `::1`, `localhost:8765` -> `localhost`, lowercased."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Guard:
    def __init__(self, *, token: str | None, allowed_hosts: Iterable[str] = (), allowed_origins: Iterable[str] = ()):
        self._token = token.encode() if token else None
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.allowed_origins = set(TAURI_ORIGINS) | {o.rstrip("/") for o in allowed_origins}

    def check_host(self, host_header: str | None) -> None:
        if not host_header:
            return  # HTTP/1.0 without Host: not a browser, so not a rebinding attack
        name = host_name(host_header)
        if is_loopback(name) or name in self.allowed_hosts:
            return
        raise Forbidden(f"Host '{printable(name)}' is not allowed; use 127.0.0.1 or localhost", code="host_not_allowed")

    def origin_allowed(self, origin: str) -> bool:
        return origin.rstrip("/") in self.allowed_origins

    def check_origin(self, origin: str | None) -> None:
        if origin is not None and not self.origin_allowed(origin):
            raise Forbidden(f"Origin '{printable(origin)}' is not allowed", code="origin_not_allowed")

    def check_token(self, authorization: str | None) -> None:
        if self._token is None:
            return
        scheme, _, presented = (authorization or "").partition(" ")
        # header bytes that are not UTF-8 arrive as surrogates: compare them as the bytes they were
        given = presented.strip().encode("utf-8", "surrogateescape")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, self._token):
            raise Unauthorized("Missing or invalid bearer token: send 'Authorization: Bearer <AI_GATEWAY_TOKEN>'")

    def check_api_key(self, api_key: str | None, authorization: str | None) -> None:
        """Anthropic-shaped routes: the token as `x-api-key`, or as a bearer token."""
        if self._token is None or (
            api_key and hmac.compare_digest(api_key.strip().encode("utf-8", "surrogateescape"), self._token)
        ):
            return
        try:
            self.check_token(authorization)
        except Unauthorized:
            raise Unauthorized(
                "Missing or invalid token: send 'x-api-key: <AI_GATEWAY_TOKEN>' "
                "or 'Authorization: Bearer <AI_GATEWAY_TOKEN>'"
            ) from None

    @staticmethod
    def check_json_body(content_type: str | None) -> None:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise UnsupportedMediaType(
                f"POST bodies must be 'application/json', not '{printable(media, 100) or 'nothing'}'",
                code="unsupported_media_type",
            )

    def preflight_headers(self, origin: str, requested: str | None) -> dict[str, str]:
        """The answer to a preflight from an allowed origin.

        Every header the browser asks for is allowed: the origin is the boundary, and a
        list of names only breaks the next SDK (Firefox and WebKit name `user-agent`, the
        openai SDK sends `x-stainless-*`, others `openai-*`, `anthropic-*`, `traceparent`).
        Names are echoed only when they are valid header names, so nothing odd is
        reflected into the response."""
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-methods": PREFLIGHT_METHODS,
            "access-control-allow-headers": ", ".join(requested_header_names(requested) or PREFLIGHT_HEADERS),
            "access-control-max-age": PREFLIGHT_MAX_AGE,
            "vary": "Origin, Access-Control-Request-Headers",
        }

    def cors_headers(self, origin: str | None) -> Mapping[str, str]:
        if origin is None or not self.origin_allowed(origin):
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": EXPOSED_HEADERS,
            "vary": "Origin",
        }


def requested_header_names(requested: str | None) -> list[str]:
    """`Access-Control-Request-Headers` as a list of valid, lowercased, distinct names."""
    names: list[str] = []
    for part in (requested or "").split(","):
        name = part.strip().lower()
        if _HEADER_NAME.match(name) and name not in names:
            names.append(name)
            if len(names) == _MAX_ECHOED_HEADERS:
                break
    return names
