"""Model id -> ordered targets. Pure: no I/O, no clock.

Resolution (CONTRACT section 5): an alias gives its chain in order; `provider/model`
goes to that provider with the rest as the upstream model; a bare id goes to the first
provider that lists it, then the first whose pattern (`claude-*`) matches it, then the
first whose list is `"*"`; else `model_not_found`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..config import ProviderSettings
from ..errors import ModelNotFound


@dataclass(frozen=True)
class Target:
    provider: str
    model: str
    #: `provider/model`: how logs, headers and cooldowns name it (made once, used often)
    label: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.provider}/{self.model}")


#: how many resolved model ids a table remembers
_REMEMBERED = 1024


def _is_pattern(model: str) -> bool:
    return any(c in model for c in "*?[")


class RoutingTable:
    def __init__(self, providers: Sequence[ProviderSettings], aliases: Mapping[str, Sequence[str]]):
        self.providers = {p.name: p for p in providers}
        self.order = [p for p in providers]
        self.aliases = {name: tuple(chain) for name, chain in aliases.items()}
        # the table never changes (a reload builds a new one): a model id resolves the same
        # way every time, and the same few ids come in request after request
        self._resolved: dict[str, tuple[Target, ...]] = {}

    def _disabled_reason(self, provider: ProviderSettings) -> str | None:
        if provider.missing_env:
            names = ", ".join(provider.missing_env)
            return f"provider '{provider.name}' is disabled: environment variable {names} is not set"
        return None

    def resolve(self, model_id: str) -> list[Target]:
        """The targets to try, in order; raises ModelNotFound when there are none."""
        known = self._resolved.get(model_id)
        if known is None:
            known = tuple(self._resolve(model_id))
            if len(self._resolved) >= _REMEMBERED:  # ids a client makes up must not grow it
                self._resolved.clear()
            self._resolved[model_id] = known
        return list(known)

    def _resolve(self, model_id: str) -> list[Target]:
        if model_id in self.aliases:
            targets, reasons = [], []
            for entry in self.aliases[model_id]:
                try:
                    targets.append(self._resolve_one(entry))
                except ModelNotFound as exc:
                    reasons.append(exc.message)
            if not targets:
                raise ModelNotFound(f"alias '{model_id}' has no usable target ({'; '.join(reasons)})", param="model")
            return targets
        return [self._resolve_one(model_id)]

    def _resolve_one(self, model_id: str) -> Target:
        provider_name, _, rest = model_id.partition("/")
        if rest and provider_name in self.providers:
            provider = self.providers[provider_name]
            reason = self._disabled_reason(provider)
            if reason:
                raise ModelNotFound(reason, param="model")
            return Target(provider_name, rest)
        enabled = [p for p in self.order if not self._disabled_reason(p)]
        for provider in enabled:
            if model_id in provider.models:
                return Target(provider.name, model_id)
        for provider in enabled:
            if any(_is_pattern(m) and m != "*" and fnmatch.fnmatchcase(model_id, m) for m in provider.models):
                return Target(provider.name, model_id)
        for provider in enabled:
            if "*" in provider.models:
                return Target(provider.name, model_id)
        raise ModelNotFound(
            f"The model '{model_id}' does not exist or is not routed by this gateway; "
            "GET /v1/models lists the routable ids",
            param="model",
        )

    def model_ids(self) -> list[tuple[str, str]]:
        """(id, owned_by) of every routable id a client can pick: aliases, then models."""
        listed: dict[str, str] = {alias: "ai-gateway" for alias in self.aliases}
        for provider in self.order:
            if self._disabled_reason(provider):
                continue
            for model in provider.models:
                if _is_pattern(model):
                    continue
                bare_goes_here = model not in self.aliases and self._bare_target(model) == provider.name
                model_id = model if bare_goes_here else f"{provider.name}/{model}"
                listed.setdefault(model_id, provider.name)
        return list(listed.items())

    def _bare_target(self, model: str) -> str | None:
        try:
            return self._resolve_one(model).provider
        except ModelNotFound:
            return None

    def owner(self, model_id: str) -> str:
        """Who answers for `model_id` in /v1/models/{id}; raises ModelNotFound."""
        if model_id in self.aliases:
            self.resolve(model_id)
            return "ai-gateway"
        return self._resolve_one(model_id).provider
