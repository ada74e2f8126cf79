"""Client request bodies: parsed and checked before anything is routed. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import InvalidJSON, InvalidRequest

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
#: bodies are re-encoded for the upstream, and orjson refuses to write more than 254
#: levels (it reads deeper ones): refuse them here, with a 400 that says why
MAX_DEPTH = 128
#: real model ids are short; a 20 MB one would only be logged, echoed and remembered
MAX_MODEL_CHARS = 256


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidJSON("The request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson also refuses invalid UTF-8 and nesting deeper than 1024 levels
        raise InvalidJSON(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidJSON(f"The request body must be a JSON object, not {type(body).__name__}")
    # a body cannot nest deeper than it has brackets: most are cleared without a walk
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and nesting_depth(body) > MAX_DEPTH:
        raise InvalidJSON(f"The request body is nested more than {MAX_DEPTH} levels deep")
    return body


def nesting_depth(value: Any) -> int:
    """How deep objects and arrays nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if "model" not in body:
        raise InvalidRequest("Missing required parameter: 'model'", param="model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(f"'model' is longer than {MAX_MODEL_CHARS} characters", param="model")
    return model


def check_chat_request(body: dict[str, Any]) -> None:
    """The fields the gateway itself relies on; everything else passes through unchecked."""
    check_model(body)
    messages = body.get("messages")
    if "messages" not in body:
        raise InvalidRequest("Missing required parameter: 'messages'", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not _plain_message(message):
            _check_message(message, f"messages[{i}]")
    _check_options(body)


def _plain_message(message: Any) -> bool:
    """The usual message, `{"role": "user", "content": "text"}`, valid at a glance."""
    if type(message) is not dict:
        return False
    role = message.get("role")
    return type(role) is str and role in _ROLES and type(message.get("content")) is str and "tool_calls" not in message


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where)
    if not isinstance(message.get("role"), str) or message["role"] not in _ROLES:
        raise InvalidRequest(f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}", param=f"{where}.role")
    content = message.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise InvalidRequest(f"'{where}.content' must be a string or an array of parts", param=f"{where}.content")
    for j, part in enumerate(content if isinstance(content, list) else ()):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidRequest(f"'{at}' must be an object with a 'type'", param=at)
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequest(f"'{at}.text' must be a string", param=f"{at}.text")
    _check_tool_calls(message.get("tool_calls"), where)


def _check_options(body: dict[str, Any]) -> None:
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object", param="stream_options")
    if isinstance(options, dict) and "include_usage" in options and not isinstance(options["include_usage"], bool):
        raise InvalidRequest("'stream_options.include_usage' must be a boolean", param="stream_options.include_usage")
    for key in ("max_tokens", "max_completion_tokens", "n"):
        if body.get(key) is not None and (not _is_int(body[key]) or body[key] < 1):
            raise InvalidRequest(f"'{key}' must be a positive integer", param=key)
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        if body.get(key) is not None and not _is_number(body[key]):
            raise InvalidRequest(f"'{key}' must be a number", param=key)
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise InvalidRequest("'tools' must be an array of objects", param="tools")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, (str, list)):
        raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")


def _check_tool_calls(calls: Any, where: str) -> None:
    """An assistant message's `tool_calls`, as every provider (and translator) reads them."""
    if calls is None:
        return
    if not isinstance(calls, list):
        raise InvalidRequest(f"'{where}.tool_calls' must be an array", param=f"{where}.tool_calls")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict):
            raise InvalidRequest(f"'{at}' must be an object", param=at)
        if call.get("id") is not None and not isinstance(call["id"], str):
            raise InvalidRequest(f"'{at}.id' must be a string", param=f"{at}.id")
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"'{at}.function' must be an object with a 'name'", param=f"{at}.function")
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, (str, dict)):
            raise InvalidRequest(f"'{at}.function.arguments' must be a JSON string", param=f"{at}.function.arguments")


def check_embeddings_request(body: dict[str, Any]) -> None:
    check_model(body)
    value = body.get("input")
    if "input" not in body:
        raise InvalidRequest("Missing required parameter: 'input'", param="input")
    if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
        raise InvalidRequest("'input' must be a string or a non-empty array", param="input")
