"""Table tests for the pure pieces behind the hostile-input fixes: the one sanitiser, the
nesting bound, bounded cooldown bookkeeping, which settings are secrets, a program's
environment, and cleanup that survives cancellation."""

from __future__ import annotations

import asyncio

import pytest

from app.aio import finish
from app.config import parse_config
from app.providers.process import program_env
from app.routing.policy import Cooldowns
from app.server.bodies import MAX_DEPTH, nesting_depth, parse_json_object
from app.text import header_value, log_field, printable


@pytest.mark.parametrize(
    "raw, safe",
    [
        ("gpt-4o", "gpt-4o"),
        ("a\nb", "a\\x0ab"),
        ("a\rb", "a\\x0db"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\u2028b", "a\\u2028b"),
        ("evil\u202egnp", "evil\\u202egnp"),
        ("bad \udcff byte", "bad \\udcff byte"),
        ("你好 👋", "你好 👋"),
    ],
)
def test_printable_escapes_what_could_forge_or_break_a_line(raw, safe):
    assert printable(raw) == safe


def test_printable_cuts_long_text():
    out = printable("x" * 20_000_000, 100)
    assert len(out) < 130 and out.endswith("more]")


@pytest.mark.parametrize(
    "raw, field",
    [
        ("up/text", "up/text"),
        ("up/text status=200", '"up/text status=200"'),
        ('a"b', '"a\\"b"'),
        ("a\nb", '"a\\\\x0ab"'),
    ],
)
def test_log_fields_are_quoted_when_they_could_pose_as_another(raw, field):
    assert log_field(raw) == field


def test_header_values_are_printable_ascii():
    value = header_value("up/模型\x1b\n")
    assert value.isascii() and value.isprintable()


@pytest.mark.parametrize(
    "body, depth",
    [
        ({}, 1),
        ({"a": 1}, 1),
        ({"a": [1, {"b": []}]}, 4),
        ({"a": [[[[]]]]}, 5),
    ],
)
def test_nesting_depth(body, depth):
    assert nesting_depth(body) == depth


def test_deep_bodies_are_refused_before_anything_reencodes_them():
    from app.errors import InvalidJSON

    ok = b'{"x":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert parse_json_object(ok)
    deep = b'{"x":' + b"[" * 300 + b"]" * 300 + b"}"
    with pytest.raises(InvalidJSON, match="nested"):
        parse_json_object(deep)


def test_cooldown_bookkeeping_is_bounded():
    cooldowns = Cooldowns(after=3, seconds=30, capacity=100)
    for i in range(10_000):
        cooldowns.failed(f"up/model-{i}")
    assert len(cooldowns) <= 100


def test_cooldowns_still_work_within_the_bound():
    now = [0.0]
    cooldowns = Cooldowns(after=2, seconds=30, clock=lambda: now[0], capacity=10)
    cooldowns.failed("a")
    for i in range(5):
        cooldowns.failed(f"other-{i}")
    cooldowns.failed("a")
    assert not cooldowns.available("a")
    now[0] = 31
    assert cooldowns.available("a")


def test_every_configured_credential_is_a_secret():
    config = parse_config(
        """
[providers.up]
type = "openai"
base_url = "http://127.0.0.1:1/v1"
models = ["*"]
headers = { "X-Custom-Auth" = "${AUTH}", "X-Api-Secret" = "literal-secret", "X-Title" = "My App" }

[providers.local]
type = "process"
command = ["model", "--key", "${PROGRAM_KEY}"]
models = ["m"]
env = { TOKEN_FOR_PROGRAM = "${PROGRAM_TOKEN}" }
""",
        env={"AUTH": "auth-value", "PROGRAM_KEY": "program-key", "PROGRAM_TOKEN": "program-token"},
    )
    secrets = set(config.secrets())
    assert {"auth-value", "literal-secret", "program-key", "program-token"} <= secrets
    assert "My App" not in secrets and "model" not in secrets


def test_a_program_gets_the_basics_and_its_own_env_only():
    config = parse_config(
        """
[providers.local]
type = "process"
command = ["model"]
models = ["m"]
env = { MODEL_HOME = "/models" }
""",
        env={},
    )
    env = program_env(
        config.providers[0],
        {
            "PATH": "/bin",
            "LC_ALL": "C.UTF-8",
            "AI_GATEWAY_TOKEN": "t",
            "OPENAI_API_KEY": "sk-x",
            "SECRET": "s",
            "HOME": "/home/u",
        },
    )
    assert env == {"PATH": "/bin", "LC_ALL": "C.UTF-8", "HOME": "/home/u", "MODEL_HOME": "/models"}


def test_finish_completes_cleanup_through_repeated_cancellation():
    async def scenario() -> list[str]:
        done: list[str] = []

        async def cleanup() -> None:
            await asyncio.sleep(0.05)
            done.append("closed")

        async def handler() -> None:
            try:
                await asyncio.sleep(10)
            finally:
                await finish(cleanup())

        task = asyncio.ensure_future(handler())
        await asyncio.sleep(0.01)
        task.cancel()  # the failed send
        await asyncio.sleep(0.01)
        task.cancel()  # the lost connection, while the cleanup still runs
        with pytest.raises(asyncio.CancelledError):
            await task
        return done

    assert asyncio.run(scenario()) == ["closed"]


def test_the_log_file_rolls_over_by_bytes_not_characters(tmp_path):
    from app.runtime.logs import RotatingFile

    log = RotatingFile(tmp_path / "gateway.log", max_bytes=1000, backups=2)
    for _ in range(10):
        log.write("你好" * 50 + "\n")  # 301 bytes, 101 characters
    log.close()
    sizes = [p.stat().st_size for p in tmp_path.iterdir()]
    assert max(sizes) <= 1000, sizes
    assert len(sizes) == 3


def test_pieces_of_a_secret_are_masked_too():
    from app.redact import Redactor

    redact = Redactor(["sk-ant-claudesecret-CCCC1111DDDD", "hdr-secret-value-XYZ123"])
    assert "claudesecret" not in redact("Invalid x-api-key: partial claudesecret-")
    assert "CCCC1111" not in redact("key ending CCCC1111DDDD was refused")
    assert "hdr-secret-value" not in redact("Bearer [REDACTED] hdr-secret-value-...[300 more]")
    assert redact("an ordinary message about gateways") == "an ordinary message about gateways"


def test_a_secret_or_a_key_glued_to_other_characters_is_masked():
    from app.redact import Redactor

    key = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    redact = Redactor([key, "tok-SuperSecretGatewayToken-42xyz"])
    for text in (
        f"Origin 'http://x{key[:40]}' is not allowed",  # a prefix, with a letter in front
        f"id=id_{key[10:24]}_tail",  # a slice from the middle, inside a longer run
        "request id=xsk-abcdefghijklmnopqrstuvwxyz012345",  # a key-like string, glued on
        "tokens: 9TokenTok-SuperSecretGatew",
    ):
        out = redact(text)
        assert "[REDACTED]" in out, out
        assert key[10:18] not in out and "abcdefghijklmnop" not in out and "SuperSecret" not in out, out
    # words that merely contain "sk-" stay readable, and so do words that share a few
    # characters with a readable secret
    assert redact("task-force disk-usage whisk-large-v3") == "task-force disk-usage whisk-large-v3"
    readable = Redactor(["browser-token-Qe29-secret"])
    assert readable("/tmp/browser-gateway0/logs") == "/tmp/browser-gateway0/logs"
    assert "Qe29" not in readable("/tmp/x-browser-token-Qe29/logs")


def test_check_config_masks_what_a_command_reads_from_the_environment(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "c.toml"
    config.write_text('[providers.x]\ntype = "process"\ncommand = ["model", "${PROGRAM_KEY}"]\nmodels = ["m"]\n')
    out = subprocess.run(
        [sys.executable, "-m", "app", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**__import__("os").environ, "PROGRAM_KEY": "program-key-value-123"},
    )
    assert out.returncode == 0, out.stderr
    assert "program-key-value-123" not in out.stdout and "[REDACTED]" in out.stdout
