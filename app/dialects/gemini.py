"""Google Gemini's `generateContent` <-> OpenAI chat completions. Pure: no I/O.

Towards a Gemini upstream: `to_gemini_request` (OpenAI request -> Gemini),
`from_gemini_response` (Gemini answer -> OpenAI completion), `GeminiStreamTranslator`
(`streamGenerateContent?alt=sse` events -> OpenAI chunks). A prompt or an answer that
Gemini's safety filters blocked outright becomes a clear 400 (`content_filter`).

Thinking models sign their function calls (`thoughtSignature`) and want the signature
back with the call in the next turn. OpenAI's shape has no place for it, so the
transforms take a `signatures` mapping (tool call id -> signature) that the provider
keeps: answers fill it, requests read it.
"""

from __future__ import annotations

import mimetypes
import re
import time
import uuid
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson

from .. import wire
from ..errors import InvalidRequest, UpstreamProtocolError, UpstreamStatusError
from ..wire import Chunk, Completion
from .base import append_turn, count, json_arguments, name_of

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.S)

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


# -- request --------------------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _image(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest("image_url parts need a 'url'", param="messages")
    match = _DATA_URL.match(url)
    if match:
        return {"inlineData": {"mimeType": match["media"], "data": match["data"]}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            parts.append(_image(part))
        else:
            raise InvalidRequest(f"content part type '{kind}' is not supported by Gemini models", param="messages")
    return parts


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    append_turn(contents, role, parts, "parts")


def _function_response(content: Any) -> dict[str, Any]:
    """A tool's answer: a JSON object as it is, anything else as {"result": text}."""
    text = _text(content)
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"result": text}


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return {"functionCallingConfig": {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name")]}}
    raise InvalidRequest("unsupported tool_choice", param="tool_choice")


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt["type"] == "json_schema" else None
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    return config


def _split_conversation(
    messages: list[dict[str, Any]], signatures: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Chat messages as Gemini's system parts and its user/model contents."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name: Gemini answers by name
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            if _text(content):
                system.append({"text": _text(content)})
        elif role == "user":
            _append(contents, "user", _parts(content))
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            _append(contents, "model", _parts(content) + [_function_call(call, signatures, names) for call in calls])
        elif role in ("tool", "function"):
            name = names.get(message.get("tool_call_id") or "") or message.get("name") or ""
            _append(contents, "user", [{"functionResponse": {"name": name, "response": _function_response(content)}}])
    return system, contents


def _function_call(call: dict[str, Any], signatures: Mapping[str, str], names: dict[str, str]) -> dict[str, Any]:
    """A chat tool call as a Gemini functionCall part, with the thought signature it came with."""
    function = call.get("function") or {}
    names[call.get("id") or ""] = function.get("name") or ""
    part: dict[str, Any] = {
        "functionCall": {"name": function.get("name") or "", "args": json_arguments(function.get("arguments"))}
    }
    signature = signatures.get(call.get("id") or "")
    if signature:
        part["thoughtSignature"] = signature
    return part


def _declaration(function: dict[str, Any]) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.get("name", "")}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters"):
        declaration["parametersJsonSchema"] = function["parameters"]
    return declaration


def to_gemini_request(body: dict[str, Any], signatures: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An OpenAI chat request as a Gemini `generateContent` request."""
    system, contents = _split_conversation(body.get("messages", []), signatures or {})
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = [t["function"] for t in body.get("tools") or [] if isinstance(t.get("function"), dict)]
    if tools:
        out["tools"] = [{"functionDeclarations": [_declaration(f) for f in tools]}]
        config = _tool_config(body.get("tool_choice"))
        if config:
            out["toolConfig"] = config
    generation = _generation_config(body)
    if generation:
        out["generationConfig"] = generation
    return out


# -- answer ---------------------------------------------------------------------------------


def blocked(reason: str, provider: str, where: str) -> UpstreamStatusError:
    return UpstreamStatusError(
        f"upstream '{provider}': Gemini's safety filters blocked the {where} ({reason})",
        status=400,
        type="invalid_request_error",
        code="content_filter",
        retryable=False,
    )


def check_prompt(data: dict[str, Any], provider: str) -> None:
    """A prompt Gemini refused outright comes back with a block reason and no candidates."""
    reason = (data.get("promptFeedback") or {}).get("blockReason")
    if reason:
        raise blocked(reason, provider, "prompt")


def usage_from(metadata: Any) -> dict[str, int] | None:
    if not isinstance(metadata, dict):
        return None
    prompt = count(metadata.get("promptTokenCount"))
    # thinking counts as output, as OpenAI's reasoning tokens do
    completion = count(metadata.get("candidatesTokenCount")) + count(metadata.get("thoughtsTokenCount"))
    return wire.usage(prompt, completion)


def _candidate(data: dict[str, Any]) -> dict[str, Any]:
    candidates = data.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return {}


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _split(parts: Any, signatures: MutableMapping[str, str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(text, function calls) of a candidate's parts; thoughts are left out, the calls'
    signatures go to `signatures`."""
    text, calls = "", []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            text += part["text"]
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            call_id = call.get("id") or new_call_id()
            if signatures is not None and isinstance(part.get("thoughtSignature"), str):
                signatures[call_id] = part["thoughtSignature"]
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": call.get("name", ""),
                        "arguments": orjson.dumps(call.get("args") or {}).decode(),
                    },
                }
            )
    return text, calls


def finish_reason(reason: Any, has_calls: bool) -> str:
    if has_calls and reason in ("STOP", None):
        return "tool_calls"
    return FINISH_REASONS.get(name_of(reason, "STOP"), "stop")


def from_gemini_response(
    data: dict[str, Any], model: str, provider: str, signatures: MutableMapping[str, str] | None = None
) -> Completion:
    """A Gemini `generateContent` answer as an OpenAI chat completion."""
    check_prompt(data, provider)
    candidate = _candidate(data)
    if not candidate:
        raise UpstreamProtocolError(f"upstream '{provider}': the Gemini answer has no candidates")
    text, calls = _split((candidate.get("content") or {}).get("parts"), signatures)
    reason = finish_reason(candidate.get("finishReason"), bool(calls))
    if reason == "content_filter" and not text and not calls:
        raise blocked(candidate.get("finishReason") or "SAFETY", provider, "answer")
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return wire.completion(
        data.get("responseId") or wire.new_completion_id(),
        data.get("modelVersion") or model,
        message,
        reason,
        usage_from(data.get("usageMetadata")),
    )


class GeminiStreamTranslator:
    """Per-stream state: Gemini's stream of partial answers in, OpenAI chunks out.

    Gemini sends no end marker: the event that carries a `finishReason` is the last."""

    def __init__(
        self, provider: str, model: str, include_usage: bool, signatures: MutableMapping[str, str] | None = None
    ):
        self.provider = provider
        self.signatures = signatures
        self.id = wire.new_completion_id()
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.started = False
        self.sent_anything = False
        self.calls = 0
        self.finished = False

    def _chunk(self, delta: dict[str, Any] | None = None, finish: str | None = None) -> Chunk:
        return wire.chunk(self.id, self.model, self.created, delta=delta, finish_reason=finish)

    def feed(self, data: dict[str, Any]) -> list[Chunk]:
        if isinstance(data.get("error"), dict):
            error = data["error"]
            raise UpstreamStatusError(
                f"upstream '{self.provider}' failed mid-stream: {error.get('message') or 'unknown error'}",
                status=502,
                code=str(error.get("status") or "upstream_error"),
            )
        check_prompt(data, self.provider)
        out: list[Chunk] = []
        if not self.started:
            self.started = True
            self.model = data.get("modelVersion") or self.model
            out.append(self._chunk({"role": "assistant", "content": ""}))
        candidate = _candidate(data)
        text, calls = _split((candidate.get("content") or {}).get("parts"), self.signatures)
        if text:
            out.append(self._chunk({"content": text}))
        for call in calls:
            out.append(self._chunk({"tool_calls": [dict(call, index=self.calls)]}))
            self.calls += 1
        self.sent_anything = self.sent_anything or bool(text or calls)
        reason = candidate.get("finishReason")
        if reason:
            finish = finish_reason(reason, self.calls > 0)
            if finish == "content_filter" and not self.sent_anything:
                raise blocked(reason, self.provider, "answer")
            self.finished = True
            out.append(self._chunk({}, finish))
            if self.include_usage:
                usage = usage_from(data.get("usageMetadata")) or wire.usage(0, 0)
                out.append(wire.usage_chunk(self.id, self.model, self.created, usage))
        return out
