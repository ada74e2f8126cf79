"""Who may talk to the gateway: token, Host, Origin and CORS, body type. Pure checks.

A local gateway is reachable by every web page the user opens (through DNS rebinding or
a cross-origin fetch), so Host and Origin are checked before anything else.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping

from ..errors import Forbidden, Unauthorized, UnsupportedMediaType
from ..text import printable

TAURI_ORIGINS = ("tauri://localhost", "http://tauri.localhost", "https://tauri.localhost")
LOOPBACK_NAMES = ("localhost",)
PREFLIGHT_HEADERS = ("authorization", "content-type", "x-request-id")
EXPOSED_HEADERS = "x-request-id, x-gateway-target, x-should-retry, retry-after"


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
    def __init__(self, *, token: str | None, allowed_hosts: Iterable[str] = (),
                 allowed_origins: Iterable[str] = ()):
        self._token = token.encode() if token else None
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.allowed_origins = set(TAURI_ORIGINS) | {o.rstrip("/") for o in allowed_origins}

    def check_host(self, host_header: str | None) -> None:
        if not host_header:
            return  # HTTP/1.0 without Host: not a browser, so not a rebinding attack
        name = host_name(host_header)
        if is_loopback(name) or name in self.allowed_hosts:
            return
        raise Forbidden(f"Host '{printable(name)}' is not allowed; use 127.0.0.1 or localhost",
                        code="host_not_allowed")

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
            raise Unauthorized(
                "Missing or invalid bearer token: send 'Authorization: Bearer <AI_GATEWAY_TOKEN>'"
            )

    def check_api_key(self, api_key: str | None, authorization: str | None) -> None:
        """Anthropic-shaped routes: the token as `x-api-key`, or as a bearer token."""
        if self._token is None or (api_key and hmac.compare_digest(
                api_key.strip().encode("utf-8", "surrogateescape"), self._token)):
            return
        try:
            self.check_token(authorization)
        except Unauthorized:
            raise Unauthorized("Missing or invalid token: send 'x-api-key: <AI_GATEWAY_TOKEN>' "
                               "or 'Authorization: Bearer <AI_GATEWAY_TOKEN>'") from None

    @staticmethod
    def check_json_body(content_type: str | None) -> None:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise UnsupportedMediaType(
                f"POST bodies must be 'application/json', not '{printable(media, 100) or 'nothing'}'",
                code="unsupported_media_type",
            )

    def preflight_headers(self, origin: str, requested: str | None) -> dict[str, str]:
        """The answer to an allowed preflight; raises Forbidden for a header we refuse."""
        asked = [h.strip().lower() for h in (requested or "").split(",") if h.strip()]
        refused = [h for h in asked if h not in PREFLIGHT_HEADERS and not h.startswith("x-stainless-")]
        if refused:
            raise Forbidden(f"Request header(s) not allowed: {', '.join(refused)}",
                            code="header_not_allowed")
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-methods": "GET, POST, OPTIONS",
            "access-control-allow-headers": ", ".join(asked or PREFLIGHT_HEADERS),
            "access-control-max-age": "600",
            "vary": "Origin",
        }

    def cors_headers(self, origin: str | None) -> Mapping[str, str]:
        if origin is None or not self.origin_allowed(origin):
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": EXPOSED_HEADERS,
            "vary": "Origin",
        }
