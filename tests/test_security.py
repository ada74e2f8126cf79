"""CONTRACT section 7, from both sides: what is refused and what is let through."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.gateway import GatewayProcess, write_config
from tests.support import GATEWAY_TOKEN, openai_provider

TOKEN = GATEWAY_TOKEN
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, upstream):
    tmp = tmp_path_factory.mktemp("guarded")
    config = write_config(
        tmp,
        f"""
[server]
cors_origins = ["http://localhost:1420"]
allowed_hosts = ["myapp.internal"]

[providers.echo]
type = "echo"

[providers.up]
type = "openai"
base_url = "{upstream.base_url}"
api_key = "${{UPSTREAM_KEY}}"
models = ["*"]
""",
    )
    with GatewayProcess(
        ["--port", "0", "--config", str(config)], tmp=tmp, env={"AI_GATEWAY_TOKEN": TOKEN, "UPSTREAM_KEY": UPSTREAM_KEY}
    ) as gw:
        yield gw


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# -- token -----------------------------------------------------------------------------------


def test_sdk_with_the_token_is_served(guarded):
    with openai.OpenAI(base_url=guarded.url + "/v1", api_key=TOKEN, max_retries=0) as client:
        assert client.chat.completions.create(**CHAT).choices[0].message.content == "hi"


@pytest.mark.parametrize("key", ["wrong-token", TOKEN[:-1], TOKEN + "x"])
def test_sdk_with_a_wrong_token_gets_401(guarded, key):
    with openai.OpenAI(base_url=guarded.url + "/v1", api_key=key, max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(**CHAT)
    assert TOKEN not in info.value.response.text


@pytest.mark.parametrize(
    "path, method",
    [
        ("/health", "GET"),
        ("/v1/models", "GET"),
        ("/v1/chat/completions", "POST"),
        ("/admin/reload", "POST"),
        ("/admin/shutdown", "POST"),
    ],
)
def test_every_route_needs_the_token(guarded, path, method):
    response = httpx.request(method, guarded.url + path, json={})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_token_scheme_must_be_bearer(guarded):
    response = httpx.get(guarded.url + "/health", headers={"authorization": f"Basic {TOKEN}"})
    assert response.status_code == 401


# -- Host (DNS rebinding) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "host, status",
    [
        ("127.0.0.1", 200),
        ("localhost", 200),
        ("LOCALHOST:1", 200),
        ("[::1]:8765", 200),
        ("myapp.internal", 200),
        ("evil.example", 403),
        ("evil.example:8765", 403),
        ("127.0.0.1.evil.example", 403),
        ("10.0.0.1", 403),
    ],
)
def test_host_header_must_be_loopback_or_configured(guarded, host, status):
    response = httpx.get(guarded.url + "/health", headers={**auth(), "host": host})
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "host_not_allowed"


# -- Origin and CORS -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin", ["tauri://localhost", "http://tauri.localhost", "https://tauri.localhost", "http://localhost:1420"]
)
def test_allowed_origins_get_cors_headers(guarded, origin):
    response = httpx.post(guarded.url + "/v1/chat/completions", json=CHAT, headers={**auth(), "origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert "x-request-id" in response.headers["access-control-expose-headers"]


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:1421", "tauri://evil"])
def test_other_origins_are_refused(guarded, origin):
    response = httpx.post(guarded.url + "/v1/chat/completions", json=CHAT, headers={**auth(), "origin": origin})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in response.headers


# what the SDKs put in a preflight: Firefox and WebKit name user-agent, the openai SDK sends
# x-stainless-*, others openai-*, anthropic-*, traceparent
SDK_PREFLIGHT_HEADERS = (
    "authorization",
    "content-type",
    "user-agent",
    "x-request-id",
    "x-stainless-os",
    "x-stainless-retry-count",
    "openai-beta",
    "anthropic-version",
    "x-api-key",
    "traceparent",
)


@pytest.mark.parametrize(
    "origin", ["tauri://localhost", "http://tauri.localhost", "https://tauri.localhost", "http://localhost:1420"]
)
def test_preflight_from_an_allowed_origin_allows_every_header_it_names(guarded, origin):
    response = httpx.options(
        guarded.url + "/v1/chat/completions",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": ",".join(SDK_PREFLIGHT_HEADERS),
        },
    )
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == origin
    allowed = [h.strip() for h in response.headers["access-control-allow-headers"].split(",")]
    assert allowed == list(SDK_PREFLIGHT_HEADERS)
    methods = [m.strip() for m in response.headers["access-control-allow-methods"].split(",")]
    assert methods == ["GET", "POST", "OPTIONS"]
    assert int(response.headers["access-control-max-age"]) > 0


def test_preflight_echoes_only_valid_header_names(guarded):
    response = httpx.options(
        guarded.url + "/v1/models",
        headers={
            "origin": "tauri://localhost",
            "access-control-request-method": "GET",
            "access-control-request-headers": 'X-Custom-Thing, bad name, a"b, ,user-agent, x-custom-thing',
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-headers"] == "x-custom-thing, user-agent"


def test_the_issue_preflight_is_allowed(guarded):
    """The preflight Firefox sent for the openai SDK, refused with 403 before."""
    response = httpx.options(
        guarded.url + "/v1/chat/completions",
        headers={
            "origin": "tauri://localhost",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,user-agent",
        },
    )
    assert response.status_code == 204
    assert "user-agent" in response.headers["access-control-allow-headers"]


def test_responses_expose_the_gateway_headers_to_scripts(guarded):
    response = httpx.post(
        guarded.url + "/v1/chat/completions", json=CHAT, headers={**auth(), "origin": "tauri://localhost"}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "tauri://localhost"
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert exposed >= {"x-request-id", "x-gateway-target", "retry-after", "x-should-retry"}
    # and on an error, which is what a page most needs to read them on
    failed = httpx.post(
        guarded.url + "/v1/chat/completions",
        json={**CHAT, "model": "up/error-500"},
        headers={**auth(), "origin": "tauri://localhost"},
    )
    assert failed.status_code == 502
    assert failed.headers["access-control-allow-origin"] == "tauri://localhost"
    assert "x-should-retry" in failed.headers["access-control-expose-headers"]


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://tauri.localhost.evil.example", "http://localhost:1421"]
)
def test_preflight_from_another_origin_is_refused(guarded, origin):
    response = httpx.options(
        guarded.url + "/v1/chat/completions",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,user-agent",
        },
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert not any(h.startswith("access-control-") for h in response.headers)


# -- secrets never leave -----------------------------------------------------------------------


def test_upstream_key_echoed_by_the_upstream_is_masked(guarded):
    response = httpx.post(guarded.url + "/v1/chat/completions", headers=auth(), json={**CHAT, "model": "error-401"})
    assert response.status_code == 401
    assert UPSTREAM_KEY not in response.text and "[REDACTED]" in response.text


def test_key_like_strings_are_masked_in_responses_and_logs(guarded):
    leaky = "sk-proj-LeakyLeakyLeaky1234"
    response = httpx.post(
        guarded.url + "/v1/chat/completions", headers=auth(), json={**CHAT, "model": f"up/error-quoting-model:{leaky}"}
    )
    assert response.status_code == 404
    assert "error-quoting-model:" in response.text  # the upstream did quote the model back
    assert leaky not in response.text and "[REDACTED]" in response.text
    line = guarded.log_line_for(response.headers["x-request-id"])
    assert leaky not in line and "[REDACTED]" in line


def test_secrets_in_any_field_a_client_chooses_are_masked_in_the_answer_and_the_log(guarded):
    # the request id, the path and the model are the client's words, and each comes back
    # somewhere: in a header, a body, the request's log line. The same model names come
    # back often, so their masking is remembered: the second time must be as clean.
    for _ in range(2):
        response = httpx.post(
            guarded.url + "/v1/chat/completions",
            headers={**auth(), "x-request-id": f"mine-{UPSTREAM_KEY}"},
            json={**CHAT, "model": f"echo/x{UPSTREAM_KEY}"},
        )
        assert response.status_code == 200
        rid = response.headers["x-request-id"]
        assert rid.startswith("req-"), rid  # not echoed: a new id instead
        assert response.headers["x-gateway-target"] == "echo/x[REDACTED]"
        line = guarded.log_line_for(rid)
        assert UPSTREAM_KEY not in line and "model=echo/x[REDACTED]" in line and "target=echo/x[REDACTED]" in line
        model = httpx.get(guarded.url + f"/v1/models/echo{TOKEN}", headers=auth())
        assert TOKEN not in model.text and "[REDACTED]" in model.json()["id"]
        assert TOKEN not in guarded.log_line_for(model.headers["x-request-id"])
    sane = httpx.get(guarded.url + "/health", headers={"x-request-id": "trace-42.a:b"})
    assert sane.headers["x-request-id"] == "trace-42.a:b"


def test_refused_requests_are_answered_before_their_body_is_read(guarded):
    """The guard runs first: a client without the token cannot make the gateway read,
    or wait for, a body."""
    import socket
    import time

    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
        )
        started = time.monotonic()
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
    assert time.monotonic() - started < 2


# -- every configured credential is a secret ------------------------------------------------

CUSTOM_AUTH = "custom-auth-value-7781"
LITERAL_SECRET = "literal-secret-in-config-5512"
HEADERS = (
    'headers = { "X-Custom-Auth" = "${CUSTOM_AUTH}", '
    f'"X-Api-Secret" = "{LITERAL_SECRET}", "X-Title" = "Chat App" }}\n'
)


@pytest.fixture(scope="module")
def custom(tmp_path_factory, upstream):
    import sys
    from pathlib import Path

    python = sys.executable.replace("\\", "/")
    fake_model = str(Path(__file__).parent / "helpers" / "fake_model.py").replace("\\", "/")
    tmp = tmp_path_factory.mktemp("custom-headers")
    config = write_config(
        tmp,
        f"""
{openai_provider("up", upstream.base_url, extra=HEADERS)}

[providers.local]
type = "process"
command = ["{python}", "{fake_model}"]
models = ["env"]
env = {{ MODEL_HOME = "/opt/models" }}
""",
    )
    with GatewayProcess(
        ["--port", "0", "--config", str(config)],
        tmp=tmp,
        env={
            "AI_GATEWAY_TOKEN": TOKEN,
            "CUSTOM_AUTH": CUSTOM_AUTH,
            "UPSTREAM_KEY": UPSTREAM_KEY,
            "OTHER_API_KEY": "sk-other-provider-key-0099",
        },
    ) as gw:
        yield gw


def test_custom_header_credentials_quoted_by_the_upstream_are_masked(custom):
    response = httpx.post(
        custom.url + "/v1/chat/completions", headers=auth(), json={**CHAT, "model": "up/error-quoting-headers"}
    )
    assert response.status_code == 400
    assert "x-custom-auth=" in response.text  # the upstream really quoted the headers back
    assert CUSTOM_AUTH not in response.text and LITERAL_SECRET not in response.text
    assert "Chat App" in response.text  # a title is no secret
    log = custom.log_text() + custom.stderr()
    assert CUSTOM_AUTH not in log and LITERAL_SECRET not in log


def test_a_program_gets_what_it_needs_and_no_credentials(custom):
    import orjson

    response = httpx.post(
        custom.url + "/v1/chat/completions", headers=auth(), timeout=20, json={**CHAT, "model": "local/env"}
    )
    assert response.status_code == 200, response.text
    env = orjson.loads(response.json()["choices"][0]["message"]["content"])
    assert env["MODEL_HOME"] == "/opt/models"
    assert "PATH" in env
    for name in ("AI_GATEWAY_TOKEN", "CUSTOM_AUTH", "UPSTREAM_KEY", "OTHER_API_KEY"):
        assert name not in env, name


def test_the_status_page_needs_no_token_but_its_data_does(guarded):
    page = httpx.get(guarded.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(guarded.url + "/admin/status").status_code == 401
    assert httpx.get(guarded.url + "/admin/status", headers=auth()).status_code == 200
    refused = httpx.get(guarded.url + "/admin/status", headers={**auth(), "origin": "https://evil.example"})
    assert refused.status_code == 403
    # only the page itself is open: no other path or method slips past the token
    posted = httpx.post(guarded.url + "/", headers={"content-type": "application/json"}, content=b"{}")
    assert posted.status_code in (401, 405)
    assert httpx.get(guarded.url + "/index.html").status_code == 401


def test_a_stream_to_a_page_closes_its_connection_afterwards(guarded):
    """Chromium (WebView2) drains an aborted fetch's body to reuse the connection, so the
    gateway would not see the abort; a stream answered to a page is never reused."""
    body = {**CHAT, "stream": True}
    with httpx.Client() as client:
        to_page = client.post(
            guarded.url + "/v1/chat/completions", json=body, headers={**auth(), "origin": "tauri://localhost"}
        )
        assert to_page.status_code == 200 and to_page.headers["connection"] == "close"
        to_sdk = client.post(guarded.url + "/v1/chat/completions", json=body, headers=auth())
        assert to_sdk.status_code == 200 and to_sdk.headers["connection"] == "keep-alive"
