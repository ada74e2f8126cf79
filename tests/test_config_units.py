"""Config validation: every error names the key and, where it can, the line."""

from __future__ import annotations

import pytest

from app.config import default_config, parse_config
from app.errors import ConfigError
from app.redact import MASK, Redactor

GOOD = """
[server]
port = 9000
cors_origins = ["http://localhost:1420"]

[timeouts]
first_byte = 30

[providers.openai]
type = "openai"
api_key = "${OPENAI_KEY}"
models = ["gpt-*"]
headers = { "OpenAI-Organization" = "${ORG:-org-default}" }

[providers.local]
type = "process"
command = ["python", "model.py"]
models = ["local"]
output = "jsonl"

[aliases]
fast = ["openai/gpt-4o-mini", "local"]
"""


def test_a_good_config():
    config = parse_config(GOOD, {"OPENAI_KEY": "sk-abc123456"})
    assert config.server.port == 9000 and config.timeouts.first_byte == 30
    openai, local = config.providers
    assert openai.api_key == "sk-abc123456" and openai.base_url == "https://api.openai.com/v1"
    assert dict(openai.headers) == {"OpenAI-Organization": "org-default"}
    assert local.command == ("python", "model.py") and local.output == "jsonl"
    assert config.aliases["fast"] == ("openai/gpt-4o-mini", "local")
    assert "sk-abc123456" in config.secrets()


def test_unset_variable_disables_the_provider_instead_of_failing():
    config = parse_config(GOOD, {})
    assert config.providers[0].missing_env == ("OPENAI_KEY",) and config.providers[0].api_key is None


@pytest.mark.parametrize(
    "text, key, line",
    [
        ('[server]\nport = "x"\n', "server.port", 2),
        ("[server]\nport = 70000\n", "server.port", 2),
        ("[server]\nportt = 1\n", "server.portt", 2),
        ("[timeouts]\n\nidle = -1\n", "timeouts.idle", 3),
        ("[timeouts]\nheartbeat = true\n", "timeouts.heartbeat", 2),
        ('[providers.x]\nmodels = ["a"]\n', "providers.x", 1),
        ('[providers.x]\ntype = "nope"\nmodels = ["a"]\n', "providers.x.type", 2),
        ('[providers.x]\ntype = "openai"\n', "providers.x.models", None),
        ('[providers.x]\ntype = "openai"\nmodels = [1]\n', "providers.x.models", 3),
        ('[providers.x]\ntype = "openai"\nmodels = ["a"]\nbase_url = "ftp://h"\n', "providers.x.base_url", 4),
        ('[providers.x]\ntype = "process"\nmodels = ["a"]\n', "providers.x.command", None),
        ('[providers."a/b"]\ntype = "echo"\n', "providers.a/b", None),
        ('[providers.x]\ntype = "echo"\n[aliases]\nf = ["y/z"]\n', "aliases.f", 4),
        ('[providers.x]\ntype = "echo"\n[aliases]\nf = []\n', "aliases.f", 4),
        ('[retry]\nattempts = 0\n[providers.x]\ntype = "echo"\n', "retry.attempts", 2),
        ("[server]\n", "providers", None),
        ("[unknown]\nx = 1\n", "unknown", None),
    ],
)
def test_errors_name_key_and_line(text, key, line):
    with pytest.raises(ConfigError) as info:
        parse_config(text, {})
    assert info.value.key == key
    if line is not None:
        assert info.value.line == line
        assert f"line {line}" in str(info.value)


def test_toml_syntax_error_has_a_line():
    with pytest.raises(ConfigError) as info:
        parse_config("[server]\nport = = 1\n", {})
    assert info.value.line == 2


def test_default_config_adds_providers_for_set_keys():
    assert [p.name for p in default_config({}).providers] == ["echo"]
    names = [p.name for p in default_config({"OPENAI_API_KEY": "sk-x", "DEEPSEEK_API_KEY": "sk-y"}).providers]
    assert names == ["echo", "openai", "deepseek"]


@pytest.mark.parametrize(
    "text, hidden",
    [
        ("key sk-proj-abcdefghijklmnop here", "sk-proj-abcdefghijklmnop"),
        ("Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        ("configured my-very-own-secret inside", "my-very-own-secret"),
        ("google AIzaSyA1234567890abcdefghijklmnop", "AIzaSyA1234567890abcdefghijklmnop"),
    ],
)
def test_redaction(text, hidden):
    out = Redactor(["my-very-own-secret"])(text)
    assert hidden not in out and MASK in out


def test_redaction_leaves_ordinary_text_alone():
    text = "request id=req-1 POST /v1/chat/completions model=gpt-4o status=200 skill-based"
    assert Redactor(["abcd1234"])(text) == text


def test_provider_types_and_their_required_keys():
    from app.config import AZURE_API_VERSION, PROVIDER_TYPES
    from app.providers.registry import PROVIDER_CLASSES

    assert set(PROVIDER_CLASSES) == set(PROVIDER_TYPES)  # one entry per type in both tables
    config = parse_config(
        """
[providers.g]
type = "gemini"
api_key = "k"
models = ["gemini-*"]

[providers.a]
type = "azure"
base_url = "https://r.openai.azure.com"
deployment = "prod"
models = ["gpt-4o"]

[providers.v]
type = "azure"
base_url = "https://r.openai.azure.com/openai/v1"
models = ["gpt-4o"]

[providers.o]
type = "openai"
responses = true
models = ["*"]
""",
        {},
    )
    g, a, v, o = config.providers
    assert g.base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert a.api_version == AZURE_API_VERSION and a.deployment == "prod"
    assert v.api_version is None and o.responses is True and o.base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize(
    "text, key, message",
    [
        ('[providers.a]\ntype = "azure"\nmodels = ["x"]', "providers.a.base_url", "needs 'base_url'"),
        ('[providers.a]\ntype = "vertex"\nmodels = ["x"]', "providers.a.type", "gemini, azure"),
        ('[providers.a]\ntype = "openai"\nresponses = "yes"\nmodels = ["x"]', "providers.a.responses", "true or false"),
    ],
)
def test_provider_type_errors_name_the_key(text, key, message):
    with pytest.raises(ConfigError) as info:
        parse_config(text, {})
    assert info.value.key == key and message in info.value.message and info.value.line


def test_unknown_provider_type_is_never_built_as_something_else():
    from app.config import ProviderSettings
    from app.providers.registry import build_provider

    with pytest.raises(ConfigError):
        build_provider(ProviderSettings(name="x", type="mystery", models=("m",)), None)  # type: ignore[arg-type]
