"""The status page (GET /) in the engines: what it shows matches GET /admin/status, the
token is asked for once and kept for the tab, and a screenshot is saved."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.browser.conftest import BROWSER_TOKEN

pytestmark = pytest.mark.timeout(300)
AUTH = {"authorization": f"Bearer {BROWSER_TOKEN}"}


def chat(gateway, model: str, stream: bool = False) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers=AUTH,
        timeout=20,
        json={"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello status page"}]},
    )


def wait_state(engine, state: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (current := engine.evaluate("document.body.dataset.state")) != state:
        assert time.monotonic() < deadline, f"the page stayed {current!r}, not {state!r}"
        time.sleep(0.1)


def dom(engine) -> dict:
    """What the page shows, read from its tables."""
    return json.loads(
        engine.evaluate("""JSON.stringify({
      text: Object.fromEntries(["version", "url", "config", "log-dir", "pid", "inflight", "previous-exit"]
        .map((id) => [id, document.getElementById(id).textContent])),
      providers: [...document.querySelectorAll("#providers tbody tr")].map((r) =>
        [...r.cells].map((c) => c.textContent)),
      aliases: [...document.querySelectorAll("#aliases tbody tr")].map((r) => [...r.cells].map((c) => c.textContent)),
      models: document.getElementById("models").textContent,
      recent: [...document.querySelectorAll("#recent tbody tr")].map((r) =>
        ({id: r.dataset.requestId, cells: [...r.cells].map((c) => c.textContent)})),
      hash: location.hash,
      stored: sessionStorage.getItem("ai-gateway-token"),
    })""")
    )


@pytest.fixture(scope="module")
def traffic(browser_gateway) -> dict[str, str]:
    """A few finished requests for the page to list: whole, streamed, and refused."""
    ids = {}
    for name, model, stream in [
        ("whole", "up/text", False),
        ("stream", "up/text", True),
        ("unknown", f"no-such-model-{uuid.uuid4().hex[:6]}", False),
    ]:
        response = chat(browser_gateway, model, stream)
        response.read()
        ids[name] = response.headers["x-request-id"]
    return ids


def status(gateway) -> dict:
    response = httpx.get(gateway.url + "/admin/status", headers=AUTH, timeout=10)
    assert response.status_code == 200
    return response.json()


def test_the_page_needs_no_token_but_its_data_does(browser_gateway):
    page = httpx.get(browser_gateway.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for external in ('src="http', 'href="http', "@import", "url(http"):
        assert external not in page.text
    assert httpx.get(browser_gateway.url + "/admin/status", timeout=10).status_code == 401


def test_the_page_shows_what_the_api_says(engine, browser_gateway, traffic, tmp_path_factory):
    engine.open(f"{browser_gateway.url}/#token={BROWSER_TOKEN}")
    wait_state(engine, "loaded")
    shown, api = dom(engine), status(browser_gateway)

    assert shown["hash"] == "" and shown["stored"] == BROWSER_TOKEN  # out of the address bar, kept for the tab
    assert shown["text"]["version"] == api["version"]
    assert shown["text"]["url"] == api["url"] == browser_gateway.url
    assert shown["text"]["config"] == api["config"] and api["config"].endswith(".toml")
    assert shown["text"]["log-dir"] == api["log_dir"] == str(browser_gateway.log_dir)
    assert shown["text"]["pid"] == f"pid {browser_gateway.pid}"
    assert shown["text"]["inflight"] == "0 requests"
    assert shown["text"]["previous-exit"] == "clean stop" and api["previous_exit"] is None

    assert [row[0] for row in shown["providers"]] == [p["name"] for p in api["providers"]]
    states = {row[0]: row[2] for row in shown["providers"]}
    assert states["up"] == "enabled"
    assert states["claude"] == "disabled: MISSING_ANTHROPIC_KEY_FOR_THE_TEST not set"
    assert shown["aliases"] == [[name, " \u2192 ".join(chain)] for name, chain in api["aliases"].items()]
    assert shown["models"] == ", ".join(m["id"] for m in api["models"]) + "; and through a provider: up/*"

    ids = [row["id"] for row in shown["recent"]]
    assert ids == [r["request_id"] for r in api["recent"]][: len(ids)]
    rows = {row["id"]: row["cells"] for row in shown["recent"]}
    by_id = {r["request_id"]: r for r in api["recent"]}
    for name in ("whole", "stream", "unknown"):
        cells, record = rows[traffic[name]], by_id[traffic[name]]
        assert cells[1] == "POST /v1/chat/completions"
        assert cells[2] == record["model"] and cells[4] == str(record["status"])
        assert cells[5] == f"{record['ms']:.1f}"
    assert rows[traffic["whole"]][3] == "up/text" and rows[traffic["unknown"]][4] == "404"
    tokens = by_id[traffic["whole"]]["tokens"]
    assert rows[traffic["whole"]][7] == f"{tokens['prompt']} + {tokens['completion']}"
    assert by_id[traffic["stream"]]["ttfb_ms"] is not None and rows[traffic["stream"]][6]

    screenshot = tmp_path_factory.getbasetemp() / f"status-page-{engine.name}.png"
    engine.screenshot(screenshot, width=1200, height=900)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000


def test_reload_shows_new_requests(engine, browser_gateway):
    engine.open(browser_gateway.url + "/")  # the token is kept for the tab
    wait_state(engine, "loaded")
    new_id = chat(browser_gateway, "echo").headers["x-request-id"]
    engine.evaluate("document.getElementById('reload').click(), ''")
    deadline = time.monotonic() + 10
    while new_id not in [row["id"] for row in dom(engine)["recent"]]:
        assert time.monotonic() < deadline, "the reload button did not show the new request"
        time.sleep(0.1)


def test_the_token_is_asked_once_and_a_wrong_one_is_refused(engine, browser_gateway):
    engine.open(browser_gateway.url + "/")
    engine.evaluate("sessionStorage.clear(), ''")
    engine.open(browser_gateway.url + "/")
    wait_state(engine, "token")

    def submit(value: str) -> None:
        engine.evaluate(
            f"document.getElementById('token').value = {json.dumps(value)}, "
            "document.getElementById('token-form').requestSubmit(), ''"
        )

    submit("wrong-token")
    wait_state(engine, "token")
    deadline = time.monotonic() + 10
    while "not accepted" not in engine.evaluate("document.getElementById('message').textContent"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    submit(BROWSER_TOKEN)
    wait_state(engine, "loaded")
    engine.open(browser_gateway.url + "/")  # a reload of the tab does not ask again
    wait_state(engine, "loaded")
