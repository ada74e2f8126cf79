"""A local program as a model: streamed text and JSON lines, errors, and no orphans."""

from __future__ import annotations

import os
import time

import httpx
import openai
import pytest

from app.runtime.lifecycle import process_alive
from tests import rawhttp
from tests.gateway import pid_gone
from tests.support import collect

pytestmark = pytest.mark.usefixtures("leak_guard")


def alive(pid: int) -> bool:
    return process_alive(pid)


def wait_gone(pids: list[int], timeout: float = 3) -> bool:
    return all(pid_gone(pid, timeout) for pid in pids)


def read_pids(path, timeout: float = 5) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.02)
    raise AssertionError("the program never wrote its pid")


def ask(client, model: str, content: str = "hi", **kwargs):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **kwargs)


def test_plain_text_output_streams_as_content(client):
    text, chunks = collect(ask(client, "words", stream=True))
    assert text == "Hello from a local model 你好 👋"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_non_streamed_answer(client):
    reply = ask(client, "words")
    assert reply.choices[0].message.content == "Hello from a local model 你好 👋"


def test_characters_split_across_reads_arrive_whole(client):
    text, _ = collect(ask(client, "split-utf8", stream=True))
    assert text == "你好 👋"


def test_json_lines_protocol(client):
    text, chunks = collect(ask(client, "jsonl", stream=True, stream_options={"include_usage": True}))
    assert text == "Hello json lines"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens == 6


def test_json_error_line_is_an_in_band_error(client):
    with pytest.raises(openai.APIError) as info:
        collect(ask(client, "jsonl-error", stream=True))
    assert "ran out of memory" in info.value.message


def test_crash_mid_answer_is_an_in_band_error_with_its_stderr(client, gateway):
    with pytest.raises(openai.APIError) as info:
        collect(ask(client, "crash", stream=True))
    assert "exited with code 3" in info.value.message and "something broke" in info.value.message
    assert "something broke inside the model" in gateway.log_text()


def test_crash_before_any_output_is_a_502(client):
    with pytest.raises(openai.InternalServerError) as info:
        ask(client, "crash-early", stream=True)
    assert info.value.status_code == 502 and "cannot load weights" in info.value.message
    with pytest.raises(openai.InternalServerError):
        ask(client, "crash-early")


def test_program_without_output_gives_an_empty_answer(client):
    assert ask(client, "silent-exit").choices[0].message.content == ""


@pytest.mark.parametrize("model", ["slow", "with-child"])
def test_client_leaving_kills_the_whole_process_tree(gateway, tmp_path, model):
    pid_path = tmp_path / "pids"
    sock = rawhttp.post(
        gateway.port,
        "/v1/chat/completions",
        {"model": model, "stream": True, "messages": [{"role": "user", "content": f"pidfile={pid_path}"}]},
    )
    assert b"tick" in rawhttp.read_until(sock, b"tick")
    pids = read_pids(pid_path)
    assert all(alive(p) for p in pids)
    rawhttp.abort(sock)
    assert wait_gone(pids), "the program (or its child) outlived the client"


def test_a_program_that_never_answers_times_out_and_is_killed(client, tmp_path):
    pid_path = tmp_path / "pid"
    with pytest.raises(openai.APIStatusError) as info:
        ask(client, "hang", content=f"pidfile={pid_path}", stream=True)
    assert info.value.status_code == 504
    assert wait_gone(read_pids(pid_path))


def test_gateway_survives_a_program_that_floods_stdout(gateway, client, tmp_path):
    streamed, whole = tmp_path / "streamed", tmp_path / "whole"  # each program writes its pid
    sock = rawhttp.post(
        gateway.port,
        "/v1/chat/completions",
        {"model": "flood", "stream": True, "messages": [{"role": "user", "content": f"pidfile={streamed}"}]},
    )
    received = 0
    while received < 4 * 1024 * 1024:
        received += len(sock.recv(1 << 20))
    rawhttp.abort(sock)
    with pytest.raises(openai.InternalServerError) as info:  # non-streamed: refused, not held in memory
        ask(client, "flood", content=f"pidfile={whole}")
    assert "ask for a stream" in info.value.message
    assert httpx.get(gateway.url + "/health").status_code == 200
    assert wait_gone(read_pids(streamed) + read_pids(whole)), "a flooding program was left running"


@pytest.mark.parametrize("model", ["words", "jsonl", "jsonl-tools"])
def test_one_answer_has_one_id(client, model):
    chunks = list(
        client.chat.completions.create(model=model, stream=True, messages=[{"role": "user", "content": "hi"}])
    )
    assert len({c.id for c in chunks}) == 1, {c.id for c in chunks}
    assert len({c.created for c in chunks}) == 1


def test_a_whole_answer_merges_streamed_tool_call_pieces(client):
    reply = client.chat.completions.create(model="jsonl-tools", messages=[{"role": "user", "content": "hi"}])
    (call,) = reply.choices[0].message.tool_calls
    assert call.id == "call_1" and call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Paris"}'
    assert reply.choices[0].finish_reason == "tool_calls"


def test_a_program_that_exits_without_reading_its_input(client):
    """The request does not fit the pipe and the program never reads it (a broken pipe
    while writing): its exit code and output still decide the answer."""
    big = "x" * 300_000
    for _ in range(10):
        reply = client.chat.completions.create(model="quick", messages=[{"role": "user", "content": big}])
        assert reply.choices[0].message.content.strip() == "hi"
    for _ in range(5):
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="quickfail", messages=[{"role": "user", "content": big}])
        assert info.value.status_code == 502


@pytest.mark.skipif(not os.path.exists("/bin/echo"), reason="needs /bin/echo (POSIX)")
def test_a_program_that_is_gone_before_its_input_is_written(client):
    """/bin/echo exits at once: often before the gateway writes the request (uvloop then
    raised RuntimeError for the closed pipe, a 500 about one time in four)."""
    for _ in range(40):
        reply = client.chat.completions.create(model="echobin", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content.strip() == "hi"
