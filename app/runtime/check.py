"""`ai-gateway check-config`: validate and summarise, for a person at a terminal."""

from __future__ import annotations

import os
import sys

from ..config import find_config_path, load_config
from ..errors import ConfigError
from ..redact import redactor_for
from .lifecycle import ExitCode


def check_config(explicit: str | None) -> int:
    path = find_config_path(explicit)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"invalid configuration ({path}): {exc.message}", file=sys.stderr)
        return ExitCode.CONFIG
    redact = redactor_for(config, os.environ.get("AI_GATEWAY_TOKEN") or None)  # a terminal is no safer
    print(f"configuration OK: {config.source}")
    print(f"listen: {config.server.host}:{config.server.port}")
    for p in config.providers:
        where = p.base_url or (" ".join(p.command) if p.command else "built-in")
        state = f"  DISABLED: {', '.join(p.missing_env)} not set" if p.missing_env else ""
        print(redact(f"provider {p.name} ({p.type}) {where} models={', '.join(p.models)}{state}"))
    for alias, chain in config.aliases.items():
        print(f"alias {alias} -> {' -> '.join(chain)}")
    return ExitCode.OK
