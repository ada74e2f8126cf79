"""Serves the test page on loopback, for any host name the engine asks for.

Chromium maps `tauri.localhost` here (its requests carry that Host); Firefox uses this
server as its HTTP proxy, so its requests name the whole URL (`GET http://tauri.localhost/
index.html`). Either way the page's origin is `http://tauri.localhost`; the same page at
`http://127.0.0.1:<port>` is a foreign origin, for the tests that must be refused.
"""

from __future__ import annotations

import mimetypes
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class PageServer:
    def __init__(self, root: Path):
        self.root = root.resolve()
        root_dir = self.root

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                relative = unquote(urlsplit(self.path).path).lstrip("/") or "index.html"
                path = (root_dir / relative).resolve()
                if root_dir not in path.parents or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("content-type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
                self.send_header("content-length", str(len(data)))
                self.send_header("cache-control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def do_CONNECT(self) -> None:  # noqa: N802
                self.send_error(405, "this test proxy serves the test page only")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.foreign_url = f"http://127.0.0.1:{self.port}/index.html"
        self._thread = threading.Thread(target=self.server.serve_forever, name="page-server", daemon=True)

    def start(self) -> PageServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
