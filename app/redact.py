"""Redaction of secrets from any text that leaves the process: logs, crash files, responses."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .config import Config

MASK = "[REDACTED]"

# Credentials that look like credentials, whoever configured them.
_GENERIC = re.compile(
    r"(?:\bsk-[A-Za-z0-9_\-]{6,}"  # OpenAI, DeepSeek, Anthropic (sk-ant-...)
    r"|sk-[A-Za-z0-9_\-]{20,}"  # the same, long enough to be a key, glued to other text
    r"|\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/\-]{6,}=*"  # authorization values
    r"|\b(?:AIza)[A-Za-z0-9_\-]{20,}"  # Google API keys
    r"|\bx(?:ai|ox[bp])-[A-Za-z0-9\-]{8,}"  # xAI, Slack-style tokens
    r"|\bgsk_[A-Za-z0-9]{8,})",  # Groq
    re.IGNORECASE,
)


#: what `recurring` remembers: this many texts, each at most this long
_MEMO_ENTRIES, _MEMO_TEXT = 1024, 256

#: a run of key-like characters long enough to be part of a credential
_PIECE = re.compile(r"[A-Za-z0-9_\-]{8,}")
#: this many characters of a configured secret in a row, anywhere in such a run, give the
#: run away (fewer would mask ordinary words that a readable secret happens to hold)
_WINDOW = 12


class Redactor:
    """Replaces configured secrets, pieces of them, and secret-looking strings with a mask.

    Pieces matter: an upstream's error may quote a key cut short ("Incorrect API key
    provided: sk-abc...xyz"), a message cut to a length may end inside one, and a client
    may glue other characters to one (`xsk-...` in an Origin it knows will be quoted). A
    run of key-like characters is masked whole when it is a piece of a secret (8
    characters or more), or holds 12 characters in a row of one."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))
        self._literal = re.compile("|".join(map(re.escape, self._secrets))) if self._secrets else None
        self._windows = frozenset(s[i : i + _WINDOW] for s in self._secrets for i in range(len(s) - _WINDOW + 1))
        self._memo: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
            text = _PIECE.sub(self._mask_piece, text)
        return _GENERIC.sub(MASK, text)

    def recurring(self, text: str) -> str:
        """`self(text)` for a text that comes back request after request (a model name, a
        path, a target): remembered, so that the request path does not run the patterns
        on the same few words every time. Bounded; long texts are not remembered."""
        done = self._memo.get(text)
        if done is None:
            done = self(text)
            if len(text) <= _MEMO_TEXT:
                if len(self._memo) >= _MEMO_ENTRIES:
                    self._memo.clear()
                self._memo[text] = done
        return done

    def _mask_piece(self, match: re.Match[str]) -> str:
        piece, windows = match.group(), self._windows
        if any(piece in secret for secret in self._secrets):
            return MASK
        return MASK if any(piece[i : i + _WINDOW] in windows for i in range(len(piece) - _WINDOW + 1)) else piece


def redactor_for(config: Config, token: str | None) -> Redactor:
    """Masks the configured credentials and the gateway's own token."""
    return Redactor(config.secrets() + ([token] if token else []))
