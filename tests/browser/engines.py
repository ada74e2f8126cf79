"""The three browser engines a Tauri app runs in, each driven the same small way.

- WebKitGTK 4.1 (Tauri on Linux): `webkit_driver.py` under Xvfb, run by the system
  Python that has Debian's `python3-gi`; pages come from a registered `tauri://` scheme.
- Chromium (the engine of WebView2, Tauri on Windows): the DevTools protocol over a
  WebSocket; `tauri.localhost` is mapped onto the test's page server, so the page's
  origin is `http://tauri.localhost`, as in WebView2.
- Firefox ESR: WebDriver BiDi over a WebSocket; `tauri.localhost` goes through the page
  server as an HTTP proxy (loopback addresses stay direct), so the origin is the same.

Each engine offers `open(url)`, `evaluate(expression) -> str | None` (a Promise is
awaited), `screenshot(path)` and `close()`. Everything is bounded in time.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.browser.plumbing import ChildProcess, EngineError, EngineMissing, WebSocketRpc

HERE = Path(__file__).resolve().parent
PAGE_DIR = HERE / "page"
SYSTEM_PYTHON = "/usr/bin/python3"
TAURI_PAGE = "tauri://localhost/index.html"


class Engine:
    name = "engine"
    #: where the SDK page is served from in this engine, and its origin there
    page_url = ""

    def __init__(self, page_server_port: int):
        self.page_server_port = page_server_port
        self.tmp = Path(tempfile.mkdtemp(prefix=f"engine-{self.name}-"))

    def open(self, url: str) -> None:
        raise NotImplementedError

    def evaluate(self, expression: str, timeout: float = 30) -> str | None:
        raise NotImplementedError

    def screenshot(self, path: Path, width: int = 1200, height: int = 900) -> None:
        raise NotImplementedError

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def wait_for(self, expression: str, timeout: float = 10) -> str:
        """Polls a JS expression until it yields a non-empty string."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise EngineError(f"{expression!r} stayed empty for {timeout} s")
            time.sleep(0.1)


def _require(program: str, packages: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise EngineMissing(f"{program} is not installed: apt-get install --no-install-recommends {packages}")
    return found


class Chromium(Engine):
    name = "chromium"
    page_url = "http://tauri.localhost/index.html"

    def __init__(self, page_server_port: int):
        binary = _require("chromium", "chromium")
        super().__init__(page_server_port)
        self.process = ChildProcess(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "--mute-audio",
                "--hide-scrollbars",
                f"--user-data-dir={self.tmp / 'profile'}",
                "--window-size=1200,900",
                # WebView2 serves a Tauri app from http://tauri.localhost; here the page server does
                f"--host-resolver-rules=MAP tauri.localhost 127.0.0.1:{page_server_port}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            log=self.tmp / "stderr.log",
        )
        try:
            found = self.process.wait_for_line(r"DevTools listening on (ws://\S+)", timeout=30)
            self.rpc = WebSocketRpc(self._page_target(found.group(1)))
            self.rpc.call("Page.enable")
        except Exception:
            self.process.stop()
            raise

    @staticmethod
    def _page_target(browser_ws: str) -> str:
        import httpx

        http = browser_ws.replace("ws://", "http://").split("/devtools/")[0]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pages = [t for t in httpx.get(http + "/json/list", timeout=5).json() if t["type"] == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise EngineError("Chromium opened no page")

    def open(self, url: str) -> None:
        self.rpc.events.clear()
        answer = self.rpc.call("Page.navigate", url=url)
        if answer.get("errorText"):
            raise EngineError(f"navigating to {url}: {answer['errorText']}")
        self.rpc.wait_event("Page.loadEventFired", timeout=30)

    def evaluate(self, expression: str, timeout: float = 30) -> str | None:
        answer = self.rpc.call(
            "Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in answer:
            raise EngineError(f"script failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path, width: int = 1200, height: int = 900) -> None:
        self.rpc.call(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
        )
        answer = self.rpc.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(answer["data"]))

    def close(self) -> None:
        try:
            self.rpc.close()
        finally:
            self.process.stop()
            super().close()


# Firefox talks to its vendor's services unless told not to: the test may reach loopback only
_FIREFOX_PREFS = {
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.allow_hijacking_localhost": True,
    "network.proxy.no_proxies_on": "127.0.0.1, [::1]",
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "app.update.enabled": False,
    "app.normandy.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "extensions.update.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore",
}


class Firefox(Engine):
    name = "firefox"
    page_url = "http://tauri.localhost/index.html"

    def __init__(self, page_server_port: int):
        binary = shutil.which("firefox-esr") or shutil.which("firefox")
        if binary is None:
            raise EngineMissing("firefox is not installed: apt-get install --no-install-recommends firefox-esr")
        super().__init__(page_server_port)
        profile = self.tmp / "profile"
        profile.mkdir()
        prefs = {
            **_FIREFOX_PREFS,
            "network.proxy.http_port": page_server_port,
            "network.proxy.ssl_port": page_server_port,
        }
        (profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())
        )
        self.process = ChildProcess(
            [
                binary,
                "--headless",
                "--no-remote",
                "--profile",
                str(profile),
                "--remote-debugging-port",
                "0",
                "about:blank",
            ],
            env={"MOZ_CRASHREPORTER_DISABLE": "1"},
            log=self.tmp / "stderr.log",
        )
        try:
            found = self.process.wait_for_line(r"WebDriver BiDi listening on (ws://\S+)", timeout=60)
            self.rpc = WebSocketRpc(found.group(1) + "/session")
            self.rpc.call("session.new", capabilities={})
            self.context = self.rpc.call("browsingContext.getTree")["contexts"][0]["context"]
        except Exception:
            self.process.stop()
            raise

    def open(self, url: str) -> None:
        self.rpc.call("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def evaluate(self, expression: str, timeout: float = 30) -> str | None:
        answer = self.rpc.call(
            "script.evaluate",
            timeout=timeout,
            expression=expression,
            target={"context": self.context},
            awaitPromise=True,
        )
        if answer.get("type") == "exception":
            raise EngineError(f"script failed: {answer.get('exceptionDetails')}")
        value = answer["result"]
        return value.get("value") if value.get("type") == "string" else None

    def screenshot(self, path: Path, width: int = 1200, height: int = 900) -> None:
        self.rpc.call("browsingContext.setViewport", context=self.context, viewport={"width": width, "height": height})
        answer = self.rpc.call("browsingContext.captureScreenshot", context=self.context, origin="document")
        path.write_bytes(base64.b64decode(answer["data"]))

    def close(self) -> None:
        try:
            try:
                self.rpc.call("session.end", timeout=5)
            except Exception:
                pass
            self.rpc.close()
        finally:
            self.process.stop()
            super().close()


class WebKitGTK(Engine):
    name = "webkitgtk"
    page_url = TAURI_PAGE

    def __init__(self, page_server_port: int):
        xvfb = _require("Xvfb", "xvfb")
        if (
            not Path(SYSTEM_PYTHON).exists()
            or subprocess.run(
                [
                    SYSTEM_PYTHON,
                    "-c",
                    "import gi; gi.require_version('WebKit2', '4.1'); from gi.repository import WebKit2",
                ],
                capture_output=True,
                timeout=30,
            ).returncode
            != 0
        ):
            raise EngineMissing(
                "WebKitGTK 4.1 for the system Python is not installed: apt-get install "
                "--no-install-recommends gir1.2-webkit2-4.1 python3-gi python3-gi-cairo"
            )
        super().__init__(page_server_port)
        read_end, write_end = os.pipe()
        self.xvfb = ChildProcess(
            [xvfb, "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
            pass_fds=(write_end,),
            log=self.tmp / "xvfb.log",
        )
        os.close(write_end)
        try:
            display = self._read_display(read_end)
            self.driver = ChildProcess(
                [SYSTEM_PYTHON, str(HERE / "webkit_driver.py"), str(PAGE_DIR)],
                env={"DISPLAY": f":{display}", "GDK_BACKEND": "x11", "WEBKIT_DISABLE_COMPOSITING_MODE": "1"},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                log=self.tmp / "stderr.log",
            )
            self._answers: queue.Queue = queue.Queue()
            threading.Thread(target=self._read_answers, daemon=True).start()
            self._answer(timeout=60)  # the ready line
        except Exception:
            self.xvfb.stop()
            raise

    @staticmethod
    def _read_display(fd: int) -> str:
        import select

        data = b""
        deadline = time.monotonic() + 20
        try:
            while not data.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise EngineError("Xvfb did not start")
                piece = os.read(fd, 32)
                if not piece:
                    raise EngineError("Xvfb exited")
                data += piece
        finally:
            os.close(fd)
        return data.decode().strip()

    def _command(self, timeout: float, **command) -> dict:
        assert self.driver.proc.stdin is not None
        self.driver.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.driver.proc.stdin.flush()
        return self._answer(timeout)

    def _read_answers(self) -> None:
        assert self.driver.proc.stdout is not None
        for line in self.driver.proc.stdout:
            self._answers.put(line)
        self._answers.put(b"")

    def _answer(self, timeout: float) -> dict:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise EngineError(f"the WebKit driver did not answer within {timeout} s: {self.driver.tail()}") from None
        if not line:
            raise EngineError(f"the WebKit driver exited: {self.driver.tail()}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise EngineError(answer.get("error", "failed"))
        return answer

    def open(self, url: str) -> None:
        self._command(30, op="open", url=url)

    def evaluate(self, expression: str, timeout: float = 30) -> str | None:
        return self._command(timeout, op="eval", expression=expression).get("value")

    def screenshot(self, path: Path, width: int = 1200, height: int = 900) -> None:
        self._command(30, op="screenshot", path=str(path), width=width, height=height)

    def close(self) -> None:
        try:
            if self.driver.proc.poll() is None and self.driver.proc.stdin:
                try:
                    self.driver.proc.stdin.write(b'{"op": "quit"}\n')
                    self.driver.proc.stdin.close()
                    self.driver.proc.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self.driver.stop()
        finally:
            self.xvfb.stop()
            super().close()


ENGINES = {"webkitgtk": WebKitGTK, "chromium": Chromium, "firefox": Firefox}
