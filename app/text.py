"""One sanitiser for any text a client or an upstream controls that reaches a log line,
a response header or an error message.

Control characters (a newline forges log lines, ESC drives terminals), Unicode line and
paragraph separators, bidi overrides and lone surrogates (undecodable bytes in a header,
which orjson cannot encode) are written as escapes, and the text is cut to a length, so a
20 MB model name costs a log line of a few hundred characters.
"""

from __future__ import annotations

import re

#: C0 and C1 controls, DEL, line/paragraph separators, bidi embeddings/overrides/isolates,
#: and lone surrogates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_FIELD_UNSAFE = re.compile(r'[\s"=\\]')
DEFAULT_LIMIT = 200


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """`text` with every unsafe character escaped, cut to about `limit` characters."""
    if len(text) > limit:
        text = text[:limit] + f"...[{len(text) - limit} more]"
    if text.isascii() and text.isprintable():  # what nearly every text is: nothing to escape
        return text
    return _UNSAFE.sub(_escape, text)


def log_field(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """A value for a `key=value` log field: printable, and quoted when it holds a space,
    a quote or `=`, so that no value can pose as another field."""
    safe = printable(text, limit)
    if _FIELD_UNSAFE.search(safe):
        return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return safe


def header_value(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """A response header value: printable ASCII only (HTTP/1.1 headers are bytes)."""
    return printable(text, limit).encode("ascii", "backslashreplace").decode("ascii")
