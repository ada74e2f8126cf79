"""What the HTTP layer needs from the rest of the process, in one object."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..redact import Redactor, redactor_for
from ..routing.router import Router
from .guard import Guard
from .recent import RecentRequests


@dataclass
class Gateway:
    """The live state behind the routes. `config` and `router` change together on reload;
    a request keeps the router it started with, so in-flight requests finish on the old one."""

    config: Config
    router: Router
    version: str
    token: str | None = None
    #: rebuilds from the config source and swaps it in; raises ConfigError (then nothing
    #: changes); answers what was loaded and what needs a restart
    reload: Callable[[], Awaitable[dict[str, Any]]] | None = None
    #: asks the process to stop gracefully, with a reason for the `stopping` line
    request_stop: Callable[[str], None] | None = None
    #: the address the gateway listens on; a specific non-loopback one is a valid Host too
    bind_host: str | None = None
    #: the upstream connection pool's state (limit, active, idle, free, waiting)
    upstream_pool: Callable[[], dict[str, int]] | None = None
    started: float = field(default_factory=time.monotonic)
    #: for the status page: where the gateway is, where it logs, how the last run ended
    url: str | None = None
    log_dir: str | None = None
    previous_exit: dict | None = None
    recent: RecentRequests = field(default_factory=RecentRequests)
    #: in-flight request handlers, cancelled when a graceful stop runs out of patience
    inflight: set = field(default_factory=set)
    #: set once a graceful stop began: a cancelled request is then not the client's doing
    stopping: bool = False
    guard: Guard = field(init=False)
    #: masks credentials in anything sent to a client
    redact: Redactor = field(init=False)

    def __post_init__(self) -> None:
        self.swap(self.config, self.router)

    def _guard_for(self, config: Config) -> Guard:
        hosts = list(config.server.allowed_hosts)
        if self.bind_host and self.bind_host not in ("0.0.0.0", "::"):
            hosts.append(self.bind_host)
        return Guard(token=self.token, allowed_hosts=hosts, allowed_origins=config.server.cors_origins)

    def swap(self, config: Config, router: Router) -> None:
        self.config, self.router = config, router
        self.guard = self._guard_for(config)
        self.redact = redactor_for(config, self.token)
