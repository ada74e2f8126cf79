"""OpenAI Responses API <-> OpenAI chat completions. Pure: no I/O.

From a Responses client (`POST /v1/responses`): `from_responses_request` (Responses
request plus any earlier turns -> chat request), `to_response` (chat completion ->
Response object), `ResponsesWriter` (chat chunks -> the Responses event sequence the
`openai` SDKs parse), `history_of` (what a later `previous_response_id` continues from).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import GatewayError, InvalidRequest, UpstreamProtocolError
from ..wire import Completion
from .base import TranslatingWriter, count, frame, name_of, text_of, tool_calls_of

Messages = list[dict[str, Any]]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _need(condition: bool, message: str, param: str) -> None:
    if not condition:
        raise InvalidRequest(message, param=param)


# -- request --------------------------------------------------------------------------------


def _parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    """Responses content parts as chat content (a plain string when it is only text)."""
    if isinstance(content, str):
        return content
    _need(isinstance(content, list), f"'{where}.content' must be a string or an array of parts", where)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        here = f"{where}.content[{j}]"
        _need(isinstance(part, dict), f"'{here}' must be an object", here)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image":
            url = part.get("image_url")
            _need(
                isinstance(url, str) and bool(url),
                f"'{here}.image_url' is required (file_id images need the native Responses API)",
                here,
            )
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise InvalidRequest(f"content part type '{kind}' is not supported for this model", param=here)
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _output_text(output: Any) -> Any:
    """A function_call_output's `output`: a string, or parts whose text is kept."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
    return "" if output is None else str(output)


def input_messages(value: Any) -> Messages:
    """Responses `input` (a string or items) as chat messages."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    _need(isinstance(value, list), "'input' must be a string or an array of items", "input")
    messages: Messages = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        _need(isinstance(item, dict), f"'{where}' must be an object", where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            _need(
                role in ("user", "assistant", "system", "developer"),
                f"'{where}.role' must be user, assistant, system or developer",
                where,
            )
            messages.append({"role": role, "content": _parts(item.get("content"), where)})
        elif kind == "function_call":
            _need(
                isinstance(item.get("call_id"), str) and isinstance(item.get("name"), str),
                f"'{where}' needs 'call_id' and 'name'",
                where,
            )
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": str(item.get("arguments") or "{}")},
            }
            last = messages[-1] if messages else None
            # consecutive calls (and the text just before them) are one assistant turn in chat
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            _need(isinstance(item.get("call_id"), str), f"'{where}.call_id' is required", where)
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": _output_text(item.get("output"))}
            )
        elif kind == "reasoning":
            continue  # the model's own reasoning: other providers cannot take it back
        else:
            raise InvalidRequest(f"input item type '{kind}' is not supported for this model", param=where)
    return messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    _need(isinstance(tools, list), "'tools' must be an array", "tools")
    out = []
    for j, tool in enumerate(tools):
        _need(isinstance(tool, dict), f"'tools[{j}]' must be an object", f"tools[{j}]")
        if tool.get("type") != "function":
            raise InvalidRequest(
                f"tool type '{tool.get('type')}' needs the native Responses API; only function tools are translated",
                param=f"tools[{j}]",
            )
        function: dict[str, Any] = {
            "name": str(tool.get("name", "")),
            "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
        }
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("unsupported tool_choice", param="tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(f"text.format type '{fmt['type']}' is not supported", param="text.format")


def check_responses_request(body: dict[str, Any]) -> None:
    _need(
        isinstance(body.get("model"), str) and bool(body["model"].strip()),
        "'model' must be a non-empty string",
        "model",
    )
    _need("input" in body, "Missing required parameter: 'input'", "input")
    _need(body.get("stream") is None or isinstance(body["stream"], bool), "'stream' must be a boolean", "stream")
    _need(
        body.get("instructions") is None or isinstance(body["instructions"], str),
        "'instructions' must be a string",
        "instructions",
    )
    previous = body.get("previous_response_id")
    _need(
        previous is None or isinstance(previous, str), "'previous_response_id' must be a string", "previous_response_id"
    )
    limit = body.get("max_output_tokens")
    _need(
        limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1),
        "'max_output_tokens' must be a positive integer",
        "max_output_tokens",
    )
    for key in ("temperature", "top_p"):
        value = body.get(key)
        _need(
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)),
            f"'{key}' must be a number",
            key,
        )


def from_responses_request(body: dict[str, Any], history: Messages | None = None) -> dict[str, Any]:
    """A Responses request as a chat request; `history` is the conversation of
    `previous_response_id` (its instructions are not carried over, as OpenAI does it)."""
    check_responses_request(body)
    messages: Messages = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages += list(history or []) + input_messages(body["input"])
    _need(bool(messages), "'input' must not be empty", "input")
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        if body.get("tool_choice") is not None:
            out["tool_choice"] = _tool_choice(body["tool_choice"])
    response_format = _response_format(body.get("text"))
    if response_format:
        out["response_format"] = response_format
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        out["reasoning_effort"] = reasoning["effort"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # response.completed carries usage
    return out


# -- answer ---------------------------------------------------------------------------------


def usage_of(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))
    prompt_details, completion_details = usage.get("prompt_tokens_details"), usage.get("completion_tokens_details")
    cached = count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    reasoning = count(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": prompt + completion,
    }


# finish reasons that leave a response incomplete, and why
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def function_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def response_object(
    response_id: str,
    body: dict[str, Any],
    model: str,
    created: int,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response, echoing the request's settings as OpenAI does."""
    incomplete = _INCOMPLETE.get(name_of(finish_reason))
    if status == "completed" and incomplete:
        status = "incomplete"
    text = body.get("text") if isinstance(body.get("text"), dict) else {"format": {"type": "text"}}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": text,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": usage,
        "metadata": body.get("metadata") or {},
        "user": body.get("user"),
    }


def to_response(completion: Completion, body: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat completion as a Response object."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("the upstream's answer has no choices")
    message: dict[str, Any] = choices[0]["message"] if isinstance(choices[0].get("message"), dict) else {}
    output: list[dict[str, Any]] = []
    if text_of(message.get("content")):
        output.append(message_item(new_id("msg"), text_of(message.get("content"))))
    for call in tool_calls_of(message):
        function = call.get("function") or {}
        output.append(
            function_item(
                new_id("fc"),
                call.get("id") or new_id("call"),
                function.get("name", ""),
                function.get("arguments") or "{}",
            )
        )
    return response_object(
        new_id("resp"),
        body,
        model,
        int(time.time()),
        status="completed",
        output=output,
        usage=usage_of(completion.get("usage")),
        finish_reason=choices[0].get("finish_reason"),
    )


def history_of(history: Messages | None, body: dict[str, Any], response: dict[str, Any]) -> Messages:
    """The conversation a later `previous_response_id` continues: the earlier turns, this
    turn's input and the answer's output, as chat messages (instructions are left out:
    OpenAI does not carry them over either)."""
    text, calls = "", []
    for item in response.get("output", []):
        if item.get("type") == "message":
            text += "".join(p.get("text", "") for p in item.get("content", []) if p.get("type") == "output_text")
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
            )
    answer: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        answer["tool_calls"] = calls
    return list(history or []) + input_messages(body["input"]) + [answer]


# -- stream ---------------------------------------------------------------------------------


class ResponsesWriter(TranslatingWriter):
    """Per-stream state: chat chunks in, the Responses event sequence out.

    `response.created` and `response.in_progress` first; each output item is announced
    (`response.output_item.added`), filled by deltas, and finished (`...done`) before the
    next one starts, with one id for its whole life; `response.completed` (or
    `response.incomplete`) last, holding every item again and the usage. A passthrough
    stream's events go out unchanged."""

    def __init__(self, body: dict[str, Any], model: str):
        self.body = body
        self.model = model
        self.id = new_id("resp")
        self.created = int(time.time())
        self.sequence = 0
        self.output: list[dict[str, Any]] = []  # finished items
        self.item: dict[str, Any] | None = None  # the open item
        self.tool_items: dict[int, dict[str, Any]] = {}  # chat tool call index -> its item
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        #: the finished Response, once `finish()` ran
        self.response: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return frame(kind, data)

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(self.id, self.body, self.model, self.created, status=status, **extra)

    def _start(self) -> bytes:
        self.started = True
        snapshot = self._snapshot("in_progress", output=[])
        return self._event("response.created", response=snapshot) + self._event(
            "response.in_progress", response=snapshot
        )

    def _index(self) -> int:
        return len(self.output)

    def _close(self) -> bytes:
        item, self.item = self.item, None
        if item is None:
            return b""
        index = self._index()
        item["status"] = "completed"
        out = b""
        if item["type"] == "message":
            part = item["content"][0]
            out += self._event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            out += self._event(
                "response.content_part.done", item_id=item["id"], output_index=index, content_index=0, part=part
            )
        else:
            out += self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        self.output.append(item)
        return out + self._event("response.output_item.done", output_index=index, item=item)

    def _open(self, item: dict[str, Any]) -> bytes:
        out = self._close()
        self.item = item
        announced = dict(item, status="in_progress")
        if item["type"] == "message":
            announced["content"] = []
        out += self._event("response.output_item.added", output_index=self._index(), item=announced)
        if item["type"] == "message":
            out += self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=self._index(),
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            )
        return out

    def _usage(self, usage: dict[str, Any]) -> None:
        self.usage = usage_of(usage)

    def _text(self, text: str) -> bytes:
        out = b""
        if self.item is None or self.item["type"] != "message":
            out += self._open(message_item(new_id("msg"), "", status="in_progress"))
        assert self.item is not None
        self.item["content"][0]["text"] += text
        return out + self._event(
            "response.output_text.delta",
            item_id=self.item["id"],
            output_index=self._index(),
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _finish_reason(self, reason: str) -> None:
        self.finish_reason = reason

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self.tool_items:
            item = function_item(
                new_id("fc"), call.get("id") or new_id("call"), function.get("name") or "", "", status="in_progress"
            )
            out += self._open(item)
            self.tool_items[index] = item
        item = self.tool_items[index]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item["arguments"] += arguments
            if item is self.item:  # pieces of a call already closed are kept, not re-announced
                out += self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._index(),
                    delta=arguments,
                )
        return out

    def finish(self) -> bytes:
        if self.passthrough:
            return b""  # the upstream's own response.completed already went out
        out = (b"" if self.started else self._start()) + self._close()
        self.response = self._snapshot(
            "completed", output=self.output, usage=self.usage, finish_reason=self.finish_reason
        )
        kind = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        return out + self._event(kind, response=self.response)

    def fail(self, error: GatewayError, redact: Callable[[str], str]) -> bytes:
        """`response.failed`, then an `error` event (which the Python SDK raises)."""
        message = redact(error.message)
        code = error.code or "server_error"
        out = b""
        if self.started and not self.passthrough:
            failed = self._snapshot("failed", output=self.output, error={"code": "server_error", "message": message})
            out += self._event("response.failed", response=failed)
        return out + self._event(
            "error",
            code=code,
            message=message,
            param=error.param,
            error={"type": error.type, "code": code, "message": message, "param": error.param},
        )
