"""The composition root: the one module that knows every concrete class.

`serve()` runs the gateway from start to exit code: logs and crash sinks, config, the
socket, the Sanic server on an event loop of our own, the ways to stop, the ready and
stopping lines, and the graceful stop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from .. import __version__
from ..config import Config, find_config_path, load_config
from ..errors import ConfigError
from ..providers.base import Provider
from ..providers.http import new_client, pool_stats
from ..providers.registry import build_provider
from ..redact import Redactor, redactor_for
from ..routing.policy import Cooldowns, RetryPolicy
from ..routing.router import Router
from ..routing.table import RoutingTable
from ..server.accounting import RequestRecord
from ..server.app import create_app
from ..server.guard import is_loopback
from ..server.serving import Serving
from ..server.state import Gateway
from . import heap
from .crash import CrashRecorder
from .lifecycle import (
    ControlChannel,
    ExitCode,
    Stopper,
    install_signal_handlers,
    onefile_bootloader_pid,
    watch_parent,
    watch_stdin,
)
from .litter import start_sweeper
from .logs import Logs


@dataclass(frozen=True)
class ServeOptions:
    config: str | None = None
    host: str | None = None
    port: int | None = None
    log_dir: str | None = None
    parent_pid: int | None = None
    watch_stdin: bool = False
    log_level: str = "INFO"


def build_providers(config: Config, client: Any) -> dict[str, Provider]:
    return {settings.name: build_provider(settings, client) for settings in config.providers}


def build_router(config: Config, client: Any) -> Router:
    return Router(
        RoutingTable(config.providers, config.aliases),
        build_providers(config, client),
        RetryPolicy(config.retry),
        Cooldowns(config.retry.cooldown_after, config.retry.cooldown_seconds),
        config.timeouts,
    )


def default_log_dir() -> Path:
    from platformdirs import user_log_dir

    return Path(user_log_dir("ai-gateway", appauthor=False))


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen ourselves: Sanic would turn port 0 into 8000."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    sock.setblocking(False)
    return sock


def url_for(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announced_url(host: str, sock: socket.socket) -> str:
    """The URL clients should use: a name (`localhost`) is announced as the address it was
    bound to, since clients may resolve the name to another one (::1) first."""
    address, port = sock.getsockname()[:2]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return url_for(address, port)
    return url_for(host, port)


def serve(options: ServeOptions, control: ControlChannel | None = None) -> int:
    """Run the gateway until it is told to stop; returns the process exit code."""
    return Sidecar(options, control or ControlChannel()).serve()


class Sidecar:
    """One run of the gateway process, from the log dir to the exit code."""

    logs: Logs  # set first thing in serve()
    gateway: Gateway  # set when the event loop runs
    started: Config  # the configuration the process started with
    client: Any  # the shared upstream client of the current configuration

    def __init__(self, options: ServeOptions, control: ControlChannel):
        self.options = options
        self.control = control
        self.token = os.environ.get("AI_GATEWAY_TOKEN") or None
        self.redactor = Redactor([self.token] if self.token else [])
        self.log_dir: Path | None = None
        self.crash: CrashRecorder | None = None
        self.previous_exit: dict[str, Any] | None = None
        self.config_path: Path | None = None
        self.bootloader_killed = False  # our onefile bootloader died under us
        self._background: set[asyncio.Task] = set()

    # -- before the event loop -------------------------------------------------------------
    def serve(self) -> int:
        self._open_logs()
        start_sweeper()  # onefile only: extraction dirs of killed runs; in the background
        if self.token is not None and self.token != self.token.strip():
            # clients' header values are trimmed: such a token could never be presented
            return self._fail(
                ExitCode.CONFIG,
                "invalid-config",
                "AI_GATEWAY_TOKEN starts or ends with whitespace: no client could send it",
            )
        self.config_path = find_config_path(self.options.config)
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            return self._fail(ExitCode.CONFIG, "invalid-config", f"invalid configuration: {exc.message}")
        self._use_redactor(redactor_for(config, self.token))

        host = (self.options.host or config.server.host).strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]  # an IPv6 address written as in a URL
        port = config.server.port if self.options.port is None else self.options.port
        if not is_loopback(host) and not self.token:
            return self._fail(
                ExitCode.CONFIG,
                "invalid-config",
                f"refusing to listen on non-loopback host {host!r} without AI_GATEWAY_TOKEN set",
            )
        try:
            socket.getaddrinfo(host, None)
        except socket.gaierror as exc:  # no such address: a retry cannot fix that, the command or config can
            code, reason = (ExitCode.USAGE, "usage") if self.options.host else (ExitCode.CONFIG, "invalid-config")
            return self._fail(code, reason, f"cannot listen on {host}: no such address ({exc})")
        try:
            sock = bind_socket(host, port)
        except (OSError, OverflowError) as exc:
            return self._fail(ExitCode.CANNOT_BIND, "cannot-bind", f"cannot listen on {host}:{port}: {exc}")

        try:
            with _loop_runner() as runner:
                reason = runner.run(self._run(config, sock, host))
        except Exception as exc:
            if self.crash is not None:
                self.crash.record("serve", exc)
            logger.opt(exception=exc).error("the gateway failed")
            return self._fail(ExitCode.INTERNAL, "internal-error", f"internal error: {type(exc).__name__}: {exc}")
        finally:
            sock.close()
        logger.info("stopped ({})", reason)
        # the app did not ask for this stop: the next run's previous_exit says so
        extra = {"bootloader_killed": True} if reason == "parent-exit" and self.bootloader_killed else {}
        self._end(ExitCode.OK, reason, **extra)
        return ExitCode.OK

    def _open_logs(self) -> None:
        log_dir = Path(self.options.log_dir) if self.options.log_dir else default_log_dir()
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir = log_dir
        except OSError as exc:
            print(f"ai-gateway: cannot use log dir {log_dir}: {exc}; logging to stderr only", file=sys.stderr)
        self.logs = Logs(self.log_dir, self.options.log_level, self.redactor)
        RequestRecord.sink = self.logs.request_line
        RequestRecord.redact = self.redactor.recurring
        if self.log_dir is not None:
            self.crash = CrashRecorder(self.log_dir, self.redactor)
            self.previous_exit = self.crash.begin()
            self.crash.install()

    def _use_redactor(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.logs.update_redactor(redactor)
        RequestRecord.redact = redactor.recurring
        if self.crash is not None:
            self.crash.redactor = redactor

    def _fail(self, code: ExitCode, reason: str, message: str) -> int:
        logger.error("{}", message)
        self.control.fatal(code, self.redactor(message))
        self._end(code, reason)
        return code

    def _end(self, code: ExitCode, reason: str, **extra: Any) -> None:
        if self.crash is not None:
            self.crash.end(code, reason, **extra)
        self.logs.close()

    # -- on the event loop -----------------------------------------------------------------
    async def _run(self, config: Config, sock: socket.socket, host: str) -> str:
        loop = asyncio.get_running_loop()
        if self.crash is not None:
            loop.set_exception_handler(self.crash.loop_exception_handler)
        stopper = Stopper(loop)
        self.client = new_client(config.timeouts, config.server.upstream_connections)
        self.started = config  # what the socket and Sanic's settings were made from
        gateway = Gateway(
            config,
            build_router(config, self.client),
            __version__,
            token=self.token,
            reload=self.reload,
            request_stop=stopper.request,
            bind_host=host,
            upstream_pool=lambda: pool_stats(self.client),
            url=announced_url(host, sock),
            previous_exit=self.previous_exit,
            log_dir=str(self.log_dir) if self.log_dir else None,
        )
        RequestRecord.finished = gateway.recent.add
        self.gateway = gateway

        async def reload_in_place() -> None:
            try:
                await self.reload()
            except ConfigError as exc:
                logger.error("reload refused, the old configuration stays: {}", exc.message)

        def reload_soon() -> None:  # from a signal handler or the stdin thread
            loop.call_soon_threadsafe(lambda: self._keep(loop.create_task(reload_in_place(), name="reload")))

        serving = await Serving.start(create_app(gateway), sock)
        self._watch(loop, stopper, reload_soon)
        port = sock.getsockname()[1]
        self.control.emit(
            "ready",
            version=__version__,
            pid=os.getpid(),
            host=host,
            port=port,
            url=announced_url(host, sock),
            log_dir=str(self.log_dir) if self.log_dir else None,
            previous_exit=self.previous_exit,
        )
        logger.info("ai-gateway {} listening on {} (config: {})", __version__, announced_url(host, sock), config.source)
        heap.settle()  # all that start-up made is here for good (after the ready line: a full collection takes ms)

        reason = await stopper.wait()
        self.control.emit("stopping", reason=reason)
        await serving.stop(gateway, gateway.config.server.drain_seconds)
        if self._background:  # routers retired by a reload close as their requests end
            await asyncio.wait(set(self._background), timeout=2)
        await self.client.aclose()
        return reason

    async def reload(self) -> dict[str, Any]:
        """Build everything anew from the config source, swap it in, and close what it
        replaced once the requests that still use it have finished.

        Raises ConfigError for a bad config: then nothing changes. The answer names the
        changed settings that only a restart applies (the listening socket's, and those
        Sanic reads once at start)."""
        gateway = self.gateway
        config = load_config(self.config_path)
        old_config, old_router, old_client = gateway.config, gateway.router, self.client
        if _client_settings(config) != _client_settings(old_config):
            self.client = new_client(config.timeouts, config.server.upstream_connections)
        router = build_router(config, self.client)
        self._use_redactor(redactor_for(config, self.token))
        users = set(gateway.inflight)  # every request that may still hold the old router
        gateway.swap(config, router)
        retired_client = old_client if self.client is not old_client else None
        self._keep(
            asyncio.get_running_loop().create_task(_retire(old_router, retired_client, users), name="retire-router")
        )
        # compared with what this process started with (a revert needs no restart), and
        # host and port only when no command-line option decides them
        overridden = {"host": self.options.host is not None, "port": self.options.port is not None}
        restart_needed = [
            f"server.{name}"
            for name in RESTART_ONLY
            if not overridden.get(name) and getattr(config.server, name) != getattr(self.started.server, name)
        ]
        logger.info(
            "configuration reloaded from {}{}",
            config.source,
            f"; needs a restart to apply: {', '.join(restart_needed)}" if restart_needed else "",
        )
        return {
            "status": "reloaded",
            "source": config.source,
            "providers": [p.name for p in config.providers],
            "restart_needed": restart_needed,
        }

    def _keep(self, task: asyncio.Task) -> None:
        """Hold a background task until it ends (the loop keeps only weak references)."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _watch(self, loop: asyncio.AbstractEventLoop, stopper: Stopper, reload_soon: Callable[[], None]) -> None:
        """Every way the gateway can be told to stop (or reload)."""
        install_signal_handlers(loop, stopper.request, reload_soon)
        if self.options.watch_stdin:
            watch_stdin(stopper.request, reload_soon)
        if self.options.parent_pid:
            watch_parent(self.options.parent_pid, stopper.request)
        bootloader = onefile_bootloader_pid()
        if bootloader is not None and bootloader != self.options.parent_pid:

            def bootloader_gone(reason: str) -> None:
                self.bootloader_killed = True  # it lives as long as we do, unless killed
                stopper.request(reason)

            watch_parent(bootloader, bootloader_gone)


def _loop_runner() -> asyncio.Runner:
    if sys.platform == "win32":
        from .winloop import new_event_loop  # keeps accepting after a client resets

        return asyncio.Runner(loop_factory=new_event_loop)
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        return asyncio.Runner()


#: server settings that take effect only at start: the socket, and what Sanic reads once
RESTART_ONLY = ("host", "port", "max_body_mb", "request_timeout")


def _client_settings(config: Config) -> tuple[float, int]:
    """What the shared upstream client is built from: a change needs a new client."""
    return config.timeouts.connect, config.server.upstream_connections


async def _retire(router: Router, client: Any, users: set[asyncio.Task]) -> None:
    """Close a replaced router (and client) once the requests that used it are done."""
    if users:
        await asyncio.wait(users)
    await router.aclose()
    if client is not None:
        await client.aclose()
    heap.settle()  # what the old configuration made was frozen with the rest: let it go
