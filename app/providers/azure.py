"""Azure OpenAI: OpenAI's wire format at Azure's URLs, with its `api-key` header.

Two URL forms: the classic one names a deployment and an `api-version`
(`{base}/openai/deployments/{deployment}/chat/completions?api-version=...`); the newer
`{base}/openai/v1` form is OpenAI's own layout with the deployment as `model`.
"""

from __future__ import annotations

from urllib.parse import quote

from .openai_compat import OpenAICompatProvider


class AzureProvider(OpenAICompatProvider):
    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.settings.api_key} if self.settings.api_key else {}

    @property
    def v1(self) -> bool:
        return self.base_url.endswith("/openai/v1")

    def url(self, path: str, model: str) -> str:
        if self.v1:
            url = self.base_url + path
        elif path == "/responses":  # not per deployment: the body's model names it
            url = self.base_url + "/openai/responses"
        else:
            deployment = self.settings.deployment or model
            url = f"{self.base_url}/openai/deployments/{quote(deployment, safe='')}{path}"
        if self.settings.api_version:
            url += "?api-version=" + quote(self.settings.api_version, safe="")
        return url
