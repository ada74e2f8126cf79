"""A WebKitGTK 4.1 WebView driven over stdin/stdout, as the engine tests' WebKit engine.

Run by the system Python (/usr/bin/python3, where Debian's python3-gi lives), under an X
server (Xvfb): `python3 webkit_driver.py PAGE_DIR`. Pages under PAGE_DIR are served from
a `tauri` URI scheme registered the way wry (Tauri's webview layer) registers its custom
protocol: marked secure and CORS-enabled, so a page at `tauri://localhost/...` has the
origin `tauri://localhost`, as in a Tauri app on Linux.

Commands are JSON lines on stdin, each answered by one JSON line on stdout:
  {"op": "open", "url": ...}              -> {"ok": true} once the page has loaded
  {"op": "eval", "expression": ...}       -> {"ok": true, "value": <string>}
                                             (the expression may yield a Promise)
  {"op": "screenshot", "path": ..., "width": w, "height": h} -> {"ok": true}
  {"op": "quit"}
Failures answer {"ok": false, "error": "..."}.
"""

from __future__ import annotations

import json
import mimetypes
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("WebKit2", "4.1")
from gi.repository import Gio, GLib, Gtk, WebKit2  # noqa: E402

SCHEME = "tauri"


class Driver:
    def __init__(self, page_dir: Path):
        self.page_dir = page_dir.resolve()
        self.context = WebKit2.WebContext.new_ephemeral()
        security = self.context.get_security_manager()
        # as wry does: without both, WebKitGTK 2.46+ bypasses the handler for fetches
        security.register_uri_scheme_as_secure(SCHEME)
        security.register_uri_scheme_as_cors_enabled(SCHEME)
        self.context.register_uri_scheme(SCHEME, self.serve)
        self.view = WebKit2.WebView.new_with_context(self.context)
        self.window = Gtk.OffscreenWindow()
        self.window.set_default_size(1200, 900)
        self.window.add(self.view)
        self.window.show_all()
        self.pending_load: str | None = None
        self.view.connect("load-changed", self.on_load_changed)
        self.view.connect("load-failed", self.on_load_failed)

    # -- the tauri:// scheme -------------------------------------------------------------
    def serve(self, request: WebKit2.URISchemeRequest) -> None:
        parts = urlsplit(request.get_uri())
        relative = unquote(parts.path).lstrip("/") or "index.html"
        path = (self.page_dir / relative).resolve()
        if self.page_dir not in path.parents or not path.is_file():
            request.finish_error(GLib.Error.new_literal(Gio.io_error_quark(), "not found", Gio.IOErrorEnum.NOT_FOUND))
            return
        data = path.read_bytes()
        stream = Gio.MemoryInputStream.new_from_bytes(GLib.Bytes.new(data))
        response = WebKit2.URISchemeResponse.new(stream, len(data))
        response.set_status(200, None)
        response.set_content_type(mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        request.finish_with_response(response)

    # -- commands ------------------------------------------------------------------------
    def handle(self, line: str) -> bool:
        try:
            command = json.loads(line)
            op = command["op"]
            if op == "open":
                self.pending_load = "loading"
                self.view.load_uri(command["url"])
            elif op == "eval":
                # the body of an async function: a Promise is awaited
                self.view.call_async_javascript_function(
                    "return await (" + command["expression"] + ");", -1, None, None, None, None, self.on_eval_done, None
                )
            elif op == "screenshot":
                self.window.resize(command.get("width", 1200), command.get("height", 900))
                self.view.get_snapshot(
                    WebKit2.SnapshotRegion.FULL_DOCUMENT,
                    WebKit2.SnapshotOptions.NONE,
                    None,
                    self.on_snapshot,
                    command["path"],
                )
            elif op == "quit":
                Gtk.main_quit()
            else:
                reply({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:  # the test wants to read the failure, not a dead driver
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return False

    def on_load_changed(self, view, event) -> None:
        if event == WebKit2.LoadEvent.FINISHED and self.pending_load == "loading":
            self.pending_load = None
            reply({"ok": True, "url": view.get_uri()})

    def on_load_failed(self, view, event, uri, error) -> bool:
        if self.pending_load == "loading":
            self.pending_load = "failed"
            reply({"ok": False, "error": f"load failed: {uri}: {error.message}"})
        return False

    def on_eval_done(self, view, result, _data) -> None:
        try:
            value = view.call_async_javascript_function_finish(result)
            reply({"ok": True, "value": None if value.is_undefined() or value.is_null() else value.to_string()})
        except GLib.Error as exc:
            reply({"ok": False, "error": exc.message})

    def on_snapshot(self, view, result, path) -> None:
        try:
            surface = view.get_snapshot_finish(result)
            surface.write_to_png(path)
            reply({"ok": True})
        except Exception as exc:
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def reply(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    Gtk.init([])
    driver = Driver(Path(sys.argv[1]))

    def read_commands() -> None:
        for line in sys.stdin:
            GLib.idle_add(driver.handle, line)
        GLib.idle_add(Gtk.main_quit)  # the test went away

    threading.Thread(target=read_commands, daemon=True).start()
    reply({"ok": True, "ready": True, "webkit": f"{WebKit2.get_major_version()}.{WebKit2.get_minor_version()}"})
    Gtk.main()


if __name__ == "__main__":
    main()
