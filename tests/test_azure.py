"""type = "azure": OpenAI's wire format at Azure's URLs (deployments + api-version, or the
/openai/v1 form) with the `api-key` header, tested against transcripts of Azure's answers
(content-filter annotations, the empty first stream chunk, its error shapes)."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from app.config import AZURE_API_VERSION, parse_config
from app.providers.azure import AzureProvider
from tests.conftest import UPSTREAM_KEY

pytestmark = pytest.mark.usefixtures("leak_guard")


def azure(extra: str) -> AzureProvider:
    config = parse_config(f'[providers.az]\ntype = "azure"\nmodels = ["*"]\napi_key = "k"\n{extra}')
    return AzureProvider(config.providers[0], httpx.AsyncClient())


@pytest.mark.parametrize(
    "extra, path, url",
    [
        (
            'base_url = "https://r.openai.azure.com"',
            "/chat/completions",
            f"https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version={AZURE_API_VERSION}",
        ),
        (
            'base_url = "https://r.openai.azure.com/"\ndeployment = "prod-4o"\napi_version = "2025-01-01-preview"',
            "/embeddings",
            "https://r.openai.azure.com/openai/deployments/prod-4o/embeddings?api-version=2025-01-01-preview",
        ),
        (
            'base_url = "https://r.openai.azure.com"',
            "/responses",
            f"https://r.openai.azure.com/openai/responses?api-version={AZURE_API_VERSION}",
        ),
        (
            'base_url = "https://r.openai.azure.com/openai/v1"',
            "/chat/completions",
            "https://r.openai.azure.com/openai/v1/chat/completions",
        ),
        (
            'base_url = "https://r.openai.azure.com/openai/v1"\napi_version = "preview"',
            "/responses",
            "https://r.openai.azure.com/openai/v1/responses?api-version=preview",
        ),
    ],
)
def test_urls(extra, path, url):
    provider = azure(extra)
    assert provider.url(path, "gpt-4o") == url
    assert provider.headers["api-key"] == "k" and "authorization" not in provider.headers


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "model, path",
    [
        ("az/text", f"/openai/deployments/text/chat/completions?api-version={AZURE_API_VERSION}"),
        ("azv1/text", "/openai/v1/chat/completions"),
    ],
)
def test_chat_through_azure(client, upstream, model, path, stream):
    kwargs = dict(model=model, messages=[{"role": "user", "content": "hi"}])
    if stream:
        text, usage = "", None
        # Azure's first chunk has no choices, only prompt_filter_results: it must pass harmlessly
        for chunk in client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}):
            for choice in chunk.choices:
                text += choice.delta.content or ""
            usage = chunk.usage or usage
        assert usage is not None and usage.total_tokens == 15
    else:
        reply = client.chat.completions.create(**kwargs)
        text = reply.choices[0].message.content
        assert reply.usage.total_tokens == 15
    assert text == "Hello! 你好 👋"
    seen = [s for s in upstream.seen if s.model == "text" and "/openai/" in s.path][-1]
    assert seen.path == path and seen.headers["api-key"] == UPSTREAM_KEY and "authorization" not in seen.headers


def test_tools_through_azure(client):
    reply = client.chat.completions.create(
        model="az/tools",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[{"type": "function", "function": {"name": "get_weather"}}],
    )
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_other_dialects_onto_azure(client, gateway):
    assert client.responses.create(model="az/text", input="hi").output_text == "Hello! 你好 👋"
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0) as claude:
        with claude.messages.stream(model="azv1/text", max_tokens=5, messages=[{"role": "user", "content": "hi"}]) as s:
            assert "".join(s.text_stream) == "Hello! 你好 👋"


@pytest.mark.parametrize(
    "model, error, text, code",
    [
        ("az/content-filter", openai.BadRequestError, "content management policy", "content_filter"),
        ("az/unauthorized", openai.AuthenticationError, "Access denied", "401"),
        ("az/rate-limit", openai.RateLimitError, "exceeded token rate limit", "429"),
        (
            "az/no-such-deployment",
            openai.NotFoundError,
            "deployment for this resource does not exist",
            "DeploymentNotFound",
        ),
    ],
)
def test_azure_errors_map_to_openai_statuses(client, model, error, text, code):
    with pytest.raises(error) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert text in info.value.message and info.value.code == code
    if error is openai.RateLimitError:
        assert info.value.response.headers["retry-after"] == "6"
