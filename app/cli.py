"""argv -> options -> the command. No gateway logic lives here."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from . import __version__

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit 2; the contract says 64
        raise UsageError(f"{self.prog}: {message}")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, not {value}")
    return value


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"process id must be positive, not {value}")
    return value


def _level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"log level must be one of {', '.join(LOG_LEVELS).lower()}")
    return text.upper()


def serve_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ai-gateway", description="A local, OpenAI-compatible LLM gateway.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--config",
        help="TOML config file (default: $AI_GATEWAY_CONFIG, then the "
        "user config dir's config.toml, then the built-in default)",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, help="port to listen on; 0 picks a free one (default 8765)")
    parser.add_argument("--log-dir", help="directory for gateway.log and crash records")
    parser.add_argument("--parent-pid", type=_pid, help="stop when this process ends")
    parser.add_argument(
        "--watch-stdin", action="store_true", help="stop at end of stdin or on a 'shutdown' line; 'reload' reloads"
    )
    parser.add_argument("--log-level", type=_level, default="INFO", help="trace, debug, info, warning, error")
    return parser


def check_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ai-gateway check-config", description="Validate the configuration.")
    parser.add_argument("--config", help="TOML config file")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "serve"
    if argv and argv[0] in ("serve", "check-config"):
        command = argv.pop(0)
    try:
        if command == "check-config":
            options = check_parser().parse_args(argv)
        else:
            options = serve_parser().parse_args(argv)
    except UsageError as exc:
        return _usage_failure(str(exc), command)

    if command == "check-config":
        from .runtime.check import check_config

        return check_config(options.config)
    if options.version:
        print(__version__)
        return 0
    from .runtime.run import ServeOptions, serve

    return serve(
        ServeOptions(
            config=options.config,
            host=options.host,
            port=options.port,
            log_dir=options.log_dir,
            parent_pid=options.parent_pid,
            watch_stdin=options.watch_stdin,
            log_level=options.log_level,
        )
    )


def _usage_failure(message: str, command: str) -> int:
    from .runtime.lifecycle import ControlChannel, ExitCode

    print(message, file=sys.stderr)
    print(
        "usage: ai-gateway [serve] [--config PATH] [--host HOST] [--port PORT] [--log-dir DIR]\n"
        "                  [--parent-pid PID] [--watch-stdin] [--log-level LEVEL]\n"
        "       ai-gateway check-config [--config PATH]\n"
        "       ai-gateway --version",
        file=sys.stderr,
    )
    if command == "serve":
        ControlChannel().fatal(ExitCode.USAGE, message)
    return ExitCode.USAGE
