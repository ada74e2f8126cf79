"""A small program used as a model by the process provider in tests.

It reads the OpenAI request from stdin; the model id picks the behaviour, the last user
message may name a file where it writes its pid (and its child's).
"""

import json
import os
import subprocess
import sys
import time

request = json.load(sys.stdin)
model = request["model"].split(":", 1)[0]
messages = request.get("messages", [])
text = messages[-1].get("content", "") if messages else ""
out = sys.stdout.buffer


def pid_file(extra: str = "") -> None:
    if text.startswith("pidfile="):
        with open(text[len("pidfile=") :], "w") as f:
            f.write(f"{os.getpid()}{extra}")


if model == "words":
    for word in ["Hello", " from", " a", " local", " model", " 你好", " 👋"]:
        out.write(word.encode())
        out.flush()
        time.sleep(0.01)
elif model == "env":  # the program's whole environment, as JSON
    out.write(json.dumps(dict(os.environ)).encode())
elif model == "split-utf8":
    data = "你好 👋".encode()
    for i in range(len(data)):  # one byte at a time: characters arrive split
        out.write(data[i : i + 1])
        out.flush()
        time.sleep(0.002)
elif model == "jsonl":
    for line in [
        {"delta": "Hello"},
        {"delta": " json"},
        {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": " lines"}, "finish_reason": None}],
        },
        {"delta": "", "finish_reason": "stop"},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}},
    ]:
        out.write(json.dumps(line).encode() + b"\n")
        out.flush()
elif model == "jsonl-tools":  # one tool call streamed in pieces, as OpenAI streams them

    def call(delta):
        return {"id": "program-own-id", "choices": [{"index": 0, "delta": {"tool_calls": [delta]}}]}

    for line in [
        call({"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}),
        call({"index": 0, "function": {"arguments": '{"city":'}}),
        call({"index": 0, "function": {"arguments": ' "Paris"}'}}),
        {"delta": "", "finish_reason": "tool_calls"},
    ]:
        out.write(json.dumps(line).encode() + b"\n")
        out.flush()
elif model == "jsonl-error":
    out.write(b'{"delta": "partial"}\n{"error": "the model ran out of memory"}\n')
elif model == "crash":
    out.write(b"partial output")
    out.flush()
    sys.stderr.write("Traceback: something broke inside the model\n")
    sys.exit(3)
elif model == "crash-early":
    sys.stderr.write("cannot load weights\n")
    sys.exit(2)
elif model == "slow":
    pid_file()
    for _ in range(300):
        out.write(b"tick ")
        out.flush()
        time.sleep(0.05)
elif model == "with-child":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pid_file(f" {child.pid}")
    for _ in range(300):
        out.write(b"tick ")
        out.flush()
        time.sleep(0.05)
elif model == "flood":
    pid_file()
    block = b"x" * 65536
    while True:
        out.write(block)
elif model == "hang":
    pid_file()
    time.sleep(3600)
elif model == "console":  # Windows: the console it was given (CREATE_NO_WINDOW: one, without a window)
    import ctypes

    kernel32 = ctypes.windll.kernel32
    out.write(
        json.dumps({"console_cp": kernel32.GetConsoleCP(), "console_window": kernel32.GetConsoleWindow() or 0}).encode()
    )
elif model == "silent-exit":
    pass
else:
    sys.stderr.write(f"unknown model {model}\n")
    sys.exit(1)
