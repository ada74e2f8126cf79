"""Configuration: one TOML file plus the environment, validated into frozen dataclasses.

Errors name the key and, when the file has it, the line. `${NAME}` (or
`${NAME:-default}`) in a provider's string settings is replaced by that environment
variable. With no file at all, `default_config()` gives the built-in `echo` provider plus
a provider for each well-known API key variable that is set.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_PORT = 8765


@dataclass(frozen=True)
class ProviderType:
    """What a config needs for one provider type; `providers/registry.py` pairs each name
    with its class (a test holds the two together)."""

    #: used when the config gives no base_url
    base_url: str | None = None
    #: keys the config must set for this type
    required: tuple[str, ...] = ()


PROVIDER_TYPES: dict[str, ProviderType] = {
    "openai": ProviderType(base_url="https://api.openai.com/v1"),
    "anthropic": ProviderType(base_url="https://api.anthropic.com"),
    "gemini": ProviderType(base_url="https://generativelanguage.googleapis.com/v1beta"),
    # https://<resource>.openai.azure.com, or its /openai/v1 form
    "azure": ProviderType(required=("base_url",)),
    "process": ProviderType(required=("command",)),
    "echo": ProviderType(),
}
#: Azure's classic deployment URLs need an api-version; this GA one unless the config says
AZURE_API_VERSION = "2024-10-21"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: origins allowed besides the built-in Tauri ones
    cors_origins: tuple[str, ...] = ()
    #: Host names allowed besides the loopback ones
    allowed_hosts: tuple[str, ...] = ()
    max_body_mb: float = 32.0
    #: how long a graceful stop lets in-flight requests finish
    drain_seconds: float = 3.0
    #: how long a client may take to send its request (slow-header attacks end here)
    request_timeout: float = 30.0
    #: upstream connections open at once, over every HTTP provider
    upstream_connections: int = 256


@dataclass(frozen=True)
class Timeouts:
    """Seconds; 0 turns `total` and `heartbeat` off."""

    connect: float = 10.0
    first_byte: float = 120.0
    idle: float = 120.0
    total: float = 0.0
    heartbeat: float = 15.0


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 2
    backoff_initial: float = 0.25
    backoff_max: float = 8.0
    #: the longest `retry-after` the gateway waits for before moving on
    retry_after_max: float = 20.0
    #: consecutive failures after which a target cools down, and for how long
    cooldown_after: int = 3
    cooldown_seconds: float = 30.0


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    type: str
    models: tuple[str, ...]
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    command: tuple[str, ...] = ()
    #: process providers: "text" (every piece of stdout is content) or "jsonl"
    output: str = "text"
    max_concurrency: int = 4
    #: environment variables the settings refer to that are not set
    missing_env: tuple[str, ...] = ()
    #: Anthropic requires max_tokens; this is sent when the client gives none
    default_max_tokens: int = 4096
    #: process providers: variables for the program, besides the few every program needs
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    #: values read from the environment into a command or env entry (masked like keys)
    interpolated_secrets: tuple[str, ...] = field(default=(), repr=False)
    #: the upstream serves OpenAI's Responses API itself: /v1/responses passes through
    responses: bool = False
    #: Azure: the deployment to call (default: the requested model id) and the api-version
    deployment: str | None = None
    api_version: str | None = None


@dataclass(frozen=True)
class Config:
    server: ServerSettings = ServerSettings()
    timeouts: Timeouts = Timeouts()
    retry: RetrySettings = RetrySettings()
    providers: tuple[ProviderSettings, ...] = ()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the file it came from, or "built-in"
    source: str = "built-in"

    def secrets(self) -> list[str]:
        """Every configured credential, for redaction: keys, every custom header's value
        but for a few headers that are known to carry none, and whatever a program's
        command or environment reads from a variable."""
        found = [p.api_key for p in self.providers if p.api_key]
        for p in self.providers:
            found += [value for name, value in p.headers if name.lower() not in PUBLIC_HEADERS]
            found += p.interpolated_secrets
        return [s for s in found if len(s) >= 4]


#: provider headers whose values are settings, not credentials
PUBLIC_HEADERS = frozenset(
    {
        "accept",
        "content-type",
        "user-agent",
        "anthropic-version",
        "anthropic-beta",
        "openai-beta",
        "http-referer",
        "referer",
        "x-title",
        "api-version",
    }
)


# Well-known key variables and the OpenAI-compatible (or Anthropic) API each unlocks.
WELL_KNOWN_PROVIDERS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    # env var, provider name, type, base_url, models routed there by bare id
    (
        "OPENAI_API_KEY",
        "openai",
        "openai",
        "https://api.openai.com/v1",
        ("gpt-*", "chatgpt-*", "o1*", "o3*", "o4*", "text-embedding-*"),
    ),
    ("ANTHROPIC_API_KEY", "anthropic", "anthropic", "https://api.anthropic.com", ("claude-*",)),
    ("DEEPSEEK_API_KEY", "deepseek", "openai", "https://api.deepseek.com/v1", ("deepseek-*",)),
    ("GEMINI_API_KEY", "gemini", "openai", "https://generativelanguage.googleapis.com/v1beta/openai", ("gemini-*",)),
    (
        "MISTRAL_API_KEY",
        "mistral",
        "openai",
        "https://api.mistral.ai/v1",
        ("mistral-*", "codestral-*", "ministral-*", "magistral-*", "pixtral-*"),
    ),
    ("GROQ_API_KEY", "groq", "openai", "https://api.groq.com/openai/v1", ()),
    ("XAI_API_KEY", "xai", "openai", "https://api.x.ai/v1", ("grok-*",)),
    ("TOGETHER_API_KEY", "together", "openai", "https://api.together.xyz/v1", ()),
    ("OPENROUTER_API_KEY", "openrouter", "openai", "https://openrouter.ai/api/v1", ()),
)


def default_config(env: Mapping[str, str] | None = None) -> Config:
    """The built-in configuration: `echo`, plus one provider per well-known key that is set."""
    env = os.environ if env is None else env
    providers = [ProviderSettings(name="echo", type="echo", models=("echo",))]
    for var, name, type_, base_url, models in WELL_KNOWN_PROVIDERS:
        if env.get(var):
            providers.append(
                ProviderSettings(
                    name=name,
                    type=type_,
                    models=models,
                    base_url=base_url,
                    api_key=env[var],
                )
            )
    return Config(providers=tuple(providers))


def find_config_path(explicit: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """`--config`, else `AI_GATEWAY_CONFIG`, else `config.toml` in the user config dir if present."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if env.get("AI_GATEWAY_CONFIG"):
        return Path(env["AI_GATEWAY_CONFIG"])
    from platformdirs import user_config_dir

    candidate = Path(user_config_dir("ai-gateway", appauthor=False)) / "config.toml"
    return candidate if candidate.is_file() else None


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate `path`, or the built-in default when it is None."""
    env = os.environ if env is None else env
    if path is None:
        return default_config(env)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return parse_config(text, env, source=str(path))


def parse_config(text: str, env: Mapping[str, str] | None = None, *, source: str = "<string>") -> Config:
    """Validate TOML text into a Config; every error names its key and line."""
    env = os.environ if env is None else env
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        match = re.search(r"line (\d+)", str(exc))
        if line is None and match:
            line = int(match.group(1))
        raise ConfigError(f"invalid TOML: {exc}", line=line) from None
    return _Validator(text, env, source).config(raw)


class _Validator:
    """Walks the parsed TOML; knows where each key sits in the text for error messages."""

    def __init__(self, text: str, env: Mapping[str, str], source: str):
        self.lines = text.splitlines()
        self.env = env
        self.source = source

    # -- locating keys -------------------------------------------------------------------
    def line_of(self, table: str, key: str | None = None) -> int | None:
        current = ""
        header_line = None
        for number, line in enumerate(self.lines, 1):
            stripped = line.strip()
            if stripped.startswith("["):
                current = stripped.strip("[]").strip().replace('"', "").replace("'", "").replace(" ", "")
                if current == table:
                    header_line = number
                    if key is None:
                        return number
                continue
            if key is not None and current == table and re.match(rf"""^["']?{re.escape(key)}["']?\s*=""", stripped):
                return number
        return header_line  # the key is missing, or written in a form we do not trace

    def fail(self, table: str, key: str | None, message: str) -> ConfigError:
        dotted = ".".join(part for part in (table, key) if part)
        return ConfigError(message, key=dotted or None, line=self.line_of(table, key))

    # -- typed getters -----------------------------------------------------------------
    def _get(self, data: dict[str, Any], table: str, key: str, kinds: tuple[type, ...], what: str, default: Any) -> Any:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(table, key, f"must be {what}, not {value!r}")
        if not isinstance(value, kinds):
            raise self.fail(table, key, f"must be {what}, not {type(value).__name__} {value!r}")
        return value

    def number(
        self,
        data: dict[str, Any],
        table: str,
        key: str,
        default: float,
        *,
        minimum: float = 0.0,
        positive: bool = False,
    ) -> float:
        value = self._get(data, table, key, (int, float), "a number", default)
        if value < minimum or (positive and value <= 0):
            bound = "greater than 0" if positive else f"at least {minimum}"
            raise self.fail(table, key, f"must be {bound}, not {value!r}")
        return float(value)

    def integer(
        self, data: dict[str, Any], table: str, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self._get(data, table, key, (int,), "an integer", default)
        if value < minimum or (maximum is not None and value > maximum):
            raise self.fail(
                table,
                key,
                f"must be between {minimum} and {maximum}, not {value}"
                if maximum is not None
                else f"must be at least {minimum}, not {value}",
            )
        return value

    def string(
        self,
        data: dict[str, Any],
        table: str,
        key: str,
        default: str | None = None,
        *,
        choices: tuple[str, ...] | None = None,
    ) -> str | None:
        value = self._get(data, table, key, (str,), "a string", default)
        if choices and value not in choices:
            raise self.fail(table, key, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def strings(self, data: dict[str, Any], table: str, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(data, table, key, (list, str), "a list of strings", default)
        if isinstance(value, str):
            value = [value]
        if not all(isinstance(item, str) and item for item in value):
            raise self.fail(table, key, "must be a list of non-empty strings")
        return tuple(value)

    def table(self, data: dict[str, Any], table: str, key: str) -> dict[str, Any]:
        value = self._get(data, table, key, (dict,), "a table", {})
        return value

    def known_keys(self, data: dict, table: str, allowed: tuple[str, ...]) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(table, key, f"unknown key (expected one of: {', '.join(allowed)})")

    # -- interpolation -----------------------------------------------------------------
    def interpolate(self, value: str, missing: list[str]) -> str:
        def replace(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env and self.env[name] != "":
                return self.env[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        return _ENV_RE.sub(replace, value)

    def interpolated(self, value: str) -> list[str]:
        """The environment values that `${NAME}` references in `value` stand for."""
        return [self.env[m.group(1)] for m in _ENV_RE.finditer(value) if self.env.get(m.group(1))]

    # -- sections ----------------------------------------------------------------------
    def config(self, raw: dict) -> Config:
        self.known_keys(raw, "", ("server", "timeouts", "retry", "providers", "aliases"))
        server = self.server(self.table(raw, "", "server"))
        timeouts = self.timeouts(self.table(raw, "", "timeouts"))
        retry = self.retry(self.table(raw, "", "retry"))
        providers = self.providers(self.table(raw, "", "providers"))
        aliases = self.aliases(self.table(raw, "", "aliases"), providers)
        if not providers:
            raise self.fail("providers", None, "at least one provider is required")
        return Config(
            server=server, timeouts=timeouts, retry=retry, providers=providers, aliases=aliases, source=self.source
        )

    def server(self, data: dict) -> ServerSettings:
        t = "server"
        self.known_keys(
            data,
            t,
            (
                "host",
                "port",
                "cors_origins",
                "allowed_hosts",
                "max_body_mb",
                "drain_seconds",
                "request_timeout",
                "upstream_connections",
            ),
        )
        d = ServerSettings()
        return ServerSettings(
            host=self.string(data, t, "host", d.host) or d.host,
            port=self.integer(data, t, "port", d.port, minimum=0, maximum=65535),
            cors_origins=self.strings(data, t, "cors_origins"),
            allowed_hosts=self.strings(data, t, "allowed_hosts"),
            max_body_mb=self.number(data, t, "max_body_mb", d.max_body_mb, positive=True),
            drain_seconds=self.number(data, t, "drain_seconds", d.drain_seconds),
            request_timeout=self.number(data, t, "request_timeout", d.request_timeout, positive=True),
            upstream_connections=self.integer(
                data, t, "upstream_connections", d.upstream_connections, minimum=1, maximum=65536
            ),
        )

    def timeouts(self, data: dict) -> Timeouts:
        t = "timeouts"
        self.known_keys(data, t, ("connect", "first_byte", "idle", "total", "heartbeat"))
        d = Timeouts()
        return Timeouts(
            connect=self.number(data, t, "connect", d.connect, positive=True),
            first_byte=self.number(data, t, "first_byte", d.first_byte, positive=True),
            idle=self.number(data, t, "idle", d.idle, positive=True),
            total=self.number(data, t, "total", d.total),
            heartbeat=self.number(data, t, "heartbeat", d.heartbeat),
        )

    def retry(self, data: dict) -> RetrySettings:
        t = "retry"
        self.known_keys(
            data,
            t,
            ("attempts", "backoff_initial", "backoff_max", "retry_after_max", "cooldown_after", "cooldown_seconds"),
        )
        d = RetrySettings()
        return RetrySettings(
            attempts=self.integer(data, t, "attempts", d.attempts, minimum=1, maximum=10),
            backoff_initial=self.number(data, t, "backoff_initial", d.backoff_initial),
            backoff_max=self.number(data, t, "backoff_max", d.backoff_max),
            retry_after_max=self.number(data, t, "retry_after_max", d.retry_after_max),
            cooldown_after=self.integer(data, t, "cooldown_after", d.cooldown_after, minimum=0),
            cooldown_seconds=self.number(data, t, "cooldown_seconds", d.cooldown_seconds),
        )

    def providers(self, data: dict[str, Any]) -> tuple[ProviderSettings, ...]:
        result = []
        for name, body in data.items():
            if not _NAME_RE.match(name):
                raise self.fail("providers", name, "provider names use letters, digits, '_', '.', '-' only")
            if not isinstance(body, dict):
                raise self.fail("providers", name, "must be a table")
            result.append(self.provider(name, body))
        return tuple(result)

    def provider(self, name: str, body: dict[str, Any]) -> ProviderSettings:
        t = f"providers.{name}"
        self.known_keys(
            body,
            t,
            (
                "type",
                "base_url",
                "api_key",
                "headers",
                "models",
                "command",
                "output",
                "max_concurrency",
                "default_max_tokens",
                "env",
                "responses",
                "deployment",
                "api_version",
            ),
        )
        if "type" not in body:
            raise self.fail(t, None, f"missing key 'type' (one of: {', '.join(PROVIDER_TYPES)})")
        type_ = self.string(body, t, "type", choices=tuple(PROVIDER_TYPES)) or ""
        kind = PROVIDER_TYPES[type_]
        for key in kind.required:
            if key not in body:
                raise self.fail(t, key, f"missing: a provider of type '{type_}' needs '{key}'")
        missing: list[str] = []  # ${VARIABLES} that are not set: the provider is disabled
        models = self.strings(body, t, "models", ("echo",) if type_ == "echo" else ())
        if not models:
            raise self.fail(t, "models", 'missing: list the model ids this provider serves, or ["*"]')
        base_url = self.base_url(body, t, kind.base_url, missing)
        api_key = self.string(body, t, "api_key")
        command = self.strings(body, t, "command")
        if type_ == "process" and not command:
            raise self.fail(t, "command", "missing: the program and its arguments, as a list")
        # a credential may travel in a program's argv or environment too: what came from ${VAR} is secret
        secrets = [value for part in command for value in self.interpolated(part)]
        env = self.string_table(body, t, "env", missing)
        secrets += [value for _, raw in self.table(body, t, "env").items() for value in self.interpolated(raw)]
        api_version = self.string(body, t, "api_version")
        if type_ == "azure" and api_version is None and not (base_url or "").endswith("/openai/v1"):
            api_version = AZURE_API_VERSION
        deployment = self.string(body, t, "deployment")
        return ProviderSettings(
            name=name,
            type=type_,
            models=models,
            base_url=base_url,
            api_key=self.interpolate(api_key, missing) or None if api_key is not None else None,
            headers=self.string_table(body, t, "headers", missing),
            command=tuple(self.interpolate(part, missing) for part in command),
            output=self.string(body, t, "output", "text", choices=("text", "jsonl")) or "text",
            max_concurrency=self.integer(body, t, "max_concurrency", 4, minimum=1),
            missing_env=tuple(dict.fromkeys(missing)),
            default_max_tokens=self.integer(body, t, "default_max_tokens", 4096, minimum=1),
            env=env,
            interpolated_secrets=tuple(secrets),
            responses=self._get(body, t, "responses", (bool,), "true or false", False),
            deployment=self.interpolate(deployment, missing) if deployment else None,
            api_version=api_version,
        )

    def base_url(self, body: dict[str, Any], t: str, default: str | None, missing: list[str]) -> str | None:
        base_url = self.string(body, t, "base_url") or default
        if base_url is None:
            return None
        base_url = self.interpolate(base_url, missing).rstrip("/")
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise self.fail(t, "base_url", f"must be an http:// or https:// URL, not {base_url!r}")
        return base_url

    def string_table(self, body: dict[str, Any], t: str, key: str, missing: list[str]) -> tuple[tuple[str, str], ...]:
        """A table of strings (`headers`, `env`), each value interpolated."""
        pairs = []
        for name, value in self.table(body, t, key).items():
            if not isinstance(value, str):
                raise self.fail(f"{t}.{key}", name, "must be a string")
            pairs.append((name, self.interpolate(value, missing)))
        return tuple(pairs)

    def aliases(self, data: dict, providers: tuple[ProviderSettings, ...]) -> dict[str, tuple[str, ...]]:
        names = {p.name for p in providers}
        result = {}
        for alias in data:
            chain = self.strings(data, "aliases", alias)
            if not chain:
                raise self.fail("aliases", alias, "must name at least one target")
            for target in chain:
                provider = target.split("/", 1)[0]
                if "/" in target and provider not in names:
                    raise self.fail("aliases", alias, f"target {target!r} names unknown provider {provider!r}")
            result[alias] = chain
        return result
