"""The provider types: each `type` of the config and the class that serves it.

What the config needs to know of a type (its default base URL, its required keys) is in
`config.PROVIDER_TYPES`, which sits below this layer; a test holds the two tables together.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ..config import ProviderSettings
from ..errors import ConfigError
from .anthropic import AnthropicProvider
from .azure import AzureProvider
from .base import Provider
from .echo import EchoProvider
from .gemini import GeminiProvider
from .openai_compat import OpenAICompatProvider
from .process import ProcessProvider

Factory = Callable[[ProviderSettings, httpx.AsyncClient], Provider]

PROVIDER_CLASSES: dict[str, Factory] = {
    "openai": OpenAICompatProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "azure": AzureProvider,
    "process": lambda settings, client: ProcessProvider(settings),
    "echo": lambda settings, client: EchoProvider(settings),
}


def build_provider(settings: ProviderSettings, client: httpx.AsyncClient) -> Provider:
    """The provider for one config entry; an unknown type is a config error, never a guess."""
    factory = PROVIDER_CLASSES.get(settings.type)
    if factory is None:
        raise ConfigError(f"unknown provider type {settings.type!r}", key=f"providers.{settings.name}.type")
    return factory(settings, client)
