"""A local program as a model: one process per request, no shell.

Protocol (documented in the README): the gateway writes the OpenAI request JSON to the
program's stdin and closes it. The program answers on stdout:
- `output = "text"`: every piece of stdout is content, as it comes;
- `output = "jsonl"`: one JSON object per line: an OpenAI chunk (with `choices`), or
  `{"delta": "text"}`, optionally with `"finish_reason"`, or `{"error": "message"}`.
Exit code 0 ends the answer; any other code is an error. stderr goes to the log. The
whole process tree is killed when the client leaves, on timeout and at shutdown.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import enum
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

from .. import wire
from ..aio import finish
from ..config import ProviderSettings
from ..errors import UpstreamProtocolError, UpstreamStatusError, UpstreamUnreachable
from ..wire import Chunk, Completion
from .base import Provider

if TYPE_CHECKING:
    from .winjob import Job

READ_SIZE = 64 * 1024
LINE_LIMIT = 4 * 1024 * 1024
#: a non-streamed answer longer than this is refused rather than held in memory
MAX_COMPLETE_CHARS = 16 * 1024 * 1024
CREATE_NO_WINDOW = 0x08000000
#: stderr lines of one run that reach the log
STDERR_LINES_LOGGED = 50
CREATE_SUSPENDED = 0x00000004


class RunState(enum.Enum):
    RUNNING = "running"  # spawned; its output is being read
    EXITED = "exited"  # it ended by itself and was reaped
    KILLED = "killed"  # we ended it (client gone, timeout, shutdown), tree and all


class ProgramRun:
    """One run of the program: spawn, feed, read, and always end."""

    def __init__(self, provider: str, process: asyncio.subprocess.Process):
        assert process.stdout is not None and process.stderr is not None  # asked for with PIPE
        self.provider = provider
        self.process = process
        self.stdout: asyncio.StreamReader = process.stdout
        self.stderr: asyncio.StreamReader = process.stderr
        self.state = RunState.RUNNING
        self.stderr_tail: deque[str] = deque(maxlen=5)
        self.job: Job | None = None  # Windows: the job holding its process tree
        self._stderr_task = asyncio.get_running_loop().create_task(self._drain_stderr(), name="process-stderr")

    @classmethod
    async def start(
        cls, provider: str, command: tuple[str, ...], request: bytes, env: dict[str, str] | None = None
    ) -> ProgramRun:
        options: dict[str, Any] = {"env": env}
        if sys.platform == "win32":
            # no console window flashes; suspended until it is in its job (winjob.py); the
            # group lets taskkill end the tree should no job hold it
            options["creationflags"] = CREATE_NO_WINDOW | subprocess.CREATE_NEW_PROCESS_GROUP | CREATE_SUSPENDED
        else:
            options["start_new_session"] = True  # its own process group: killpg ends the tree
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=LINE_LIMIT,
                **options,
            )
        except OSError as exc:
            raise UpstreamUnreachable(
                f"provider '{provider}' cannot start {command[0]!r}: {exc.strerror or exc}", retryable=False
            ) from None
        run = cls(provider, process)
        if sys.platform == "win32":
            await run._contain()
        stdin = process.stdin
        assert stdin is not None  # asked for with PIPE
        try:
            stdin.write(request)
            await stdin.drain()
            stdin.close()
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            # a program that ignores its input may close stdin, or even exit, before we
            # wrote it (uvloop then raises RuntimeError for the closed pipe): its output
            # and exit code still decide the answer
            pass
        except BaseException:
            await run.kill()
            raise
        return run

    async def _contain(self) -> None:
        from .winjob import Job

        try:
            self.job = Job.contain(self.process.pid)
        except OSError as exc:  # never resumed: it must not linger suspended
            await self.kill()
            raise UpstreamUnreachable(
                f"provider '{self.provider}' cannot run its program: {exc}", retryable=False
            ) from None

    async def _drain_stderr(self) -> None:
        stream = self.stderr
        logged = 0
        while True:
            try:
                line = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue  # an over-long line: skip it
            if not line:
                if logged > STDERR_LINES_LOGGED:
                    logger.info("{} stderr: {} more lines not logged", self.provider, logged - STDERR_LINES_LOGGED)
                return
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self.stderr_tail.append(text[:300])
                logged += 1
                # a chatty program must not rotate the request log away: the first lines
                # of a run are logged, the rest counted (the last ones still end an error)
                if logged <= STDERR_LINES_LOGGED:
                    logger.bind(provider=self.provider).info("{} stderr: {}", self.provider, text[:500])

    async def read(self) -> bytes:
        return await self.stdout.read(READ_SIZE)

    async def readline(self) -> bytes:
        try:
            return await self.stdout.readline()
        except (ValueError, asyncio.LimitOverrunError):
            raise UpstreamProtocolError(f"provider '{self.provider}' wrote a line over {LINE_LIMIT} bytes") from None

    async def finish(self) -> None:
        """After end of output: wait for the exit; a non-zero code is an error."""
        code = await self.process.wait()
        self.state = RunState.EXITED
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 1)
        if code != 0:
            detail = f": {self.stderr_tail[-1]}" if self.stderr_tail else ""
            raise UpstreamStatusError(
                f"provider '{self.provider}': the program exited with code {code}{detail}",
                status=502,
                code="process_failed",
                retryable=False,
            )

    async def kill(self) -> None:
        """End the program and everything it started; idempotent."""
        if self.state is RunState.RUNNING and self.process.returncode is None:
            self.state = RunState.KILLED
            pid = self.process.pid
            if self.job is not None:
                self.job.terminate()
            elif sys.platform == "win32":
                with contextlib.suppress(OSError):
                    killer = await asyncio.create_subprocess_exec(
                        "taskkill",
                        "/T",
                        "/F",
                        "/PID",
                        str(pid),
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                        creationflags=CREATE_NO_WINDOW,
                    )
                    await killer.wait()
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        if self.state is RunState.KILLED:
            # the group may outlive its leader: kill it again once the leader is gone
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5)
            if sys.platform != "win32":
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
        if self.job is not None:
            self.job.close()  # what the program left running in its job ends with it
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task


#: what any program needs to run (find executables, a home, a temp dir, its locale, and
#: on Windows the system's own directories); never the gateway's token or provider keys
BASE_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "USERNAME",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TMP",
        "TEMP",
        "PYTHONIOENCODING",
        "VIRTUAL_ENV",
        "SYSTEMROOT",
        "SYSTEMDRIVE",
        "WINDIR",
        "COMSPEC",
        "PATHEXT",
        "APPDATA",
        "LOCALAPPDATA",
        "PROGRAMDATA",
        "PROGRAMFILES",
        "PROGRAMFILES(X86)",
        "USERPROFILE",
        "HOMEDRIVE",
        "HOMEPATH",
        "NUMBER_OF_PROCESSORS",
        "PROCESSOR_ARCHITECTURE",
    }
)


def program_env(settings: ProviderSettings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a provider's program: the basics, its configured `env`, nothing else."""
    environ = dict(os.environ) if environ is None else environ
    env = {k: v for k, v in environ.items() if k.upper() in BASE_ENV or k.upper().startswith(("LC_", "XDG_"))}
    env.update(settings.env)
    return env


class ProcessProvider(Provider):
    def __init__(self, settings: ProviderSettings):
        super().__init__(settings)
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._runs: set[ProgramRun] = set()

    async def stream(self, body: dict[str, Any], model: str) -> AsyncGenerator[Chunk, None]:
        request = orjson.dumps({**body, "model": model})
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        async with self._slots:
            run = await ProgramRun.start(self.name, self.settings.command, request, program_env(self.settings))
            self._runs.add(run)
            try:
                answer = Answer(model)
                chunks = self._jsonl(run, answer) if self.settings.output == "jsonl" else self._text(run, answer)
                async for chunk in _with_role_and_finish(chunks, answer, include_usage):
                    yield chunk
            finally:
                self._runs.discard(run)
                await finish(run.kill())

    async def _text(self, run: ProgramRun, answer: Answer) -> AsyncIterator[Chunk]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # pieces may split a character
        while True:
            data = await run.read()
            text = decoder.decode(data, final=not data)
            if text:
                yield answer.chunk(delta={"content": text})
            if not data:
                await run.finish()  # the exit code decides before any finish_reason goes out
                return

    async def _jsonl(self, run: ProgramRun, answer: Answer) -> AsyncIterator[Chunk]:
        while True:
            line = await run.readline()
            if not line:
                await run.finish()
                return
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise UpstreamProtocolError(f"provider '{self.name}' wrote a line that is not JSON") from None
            if not isinstance(item, dict):
                raise UpstreamProtocolError(f"provider '{self.name}' wrote JSON that is not an object")
            if item.get("error"):
                error = item["error"]
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise UpstreamStatusError(
                    f"provider '{self.name}': {message}", status=502, code="process_error", retryable=False
                )
            if isinstance(item.get("choices"), list):
                yield answer.own(item)
            elif isinstance(item.get("delta"), str) or item.get("finish_reason"):
                delta = {"content": item["delta"]} if isinstance(item.get("delta"), str) else {}
                yield answer.chunk(delta=delta, finish_reason=item.get("finish_reason"))
            else:
                raise UpstreamProtocolError(
                    f"provider '{self.name}' wrote an object with neither 'choices', 'delta' nor 'error'"
                )

    async def complete(self, body: dict[str, Any], model: str) -> Completion:
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        size, finish, usage, cid = 0, "stop", None, None
        async for chunk in self.stream({**body, "stream": True}, model):
            cid = chunk.get("id") or cid
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    parts.append(delta["content"])
                    size += len(delta["content"])
                for piece in delta.get("tool_calls") or ():
                    size += _merge_tool_call(calls, piece)
                finish = choice.get("finish_reason") or finish
            if size > MAX_COMPLETE_CHARS:
                raise UpstreamProtocolError(
                    f"provider '{self.name}' wrote more than {MAX_COMPLETE_CHARS} characters; ask for a stream"
                )
        message: dict[str, Any] = {"role": "assistant", "content": "".join(parts)}
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        return wire.completion(cid or wire.new_completion_id(), model, message, finish, usage)

    async def aclose(self) -> None:
        for run in list(self._runs):
            await run.kill()


class Answer:
    """One answer's identity: every chunk of it carries the same id, `created` and model,
    as OpenAI's do, whichever piece of the program's output it came from."""

    def __init__(self, model: str):
        self.id = wire.new_completion_id()
        self.created = int(time.time())
        self.model = model

    def chunk(self, *, delta: dict[str, Any] | None = None, finish_reason: str | None = None) -> Chunk:
        return wire.chunk(self.id, self.model, self.created, delta=delta, finish_reason=finish_reason)

    def usage_chunk(self, usage: dict[str, int]) -> Chunk:
        return wire.usage_chunk(self.id, self.model, self.created, usage)

    def own(self, chunk: Chunk) -> Chunk:
        """A chunk the program wrote whole, re-labelled as part of this answer."""
        return {**chunk, "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}


def _merge_tool_call(calls: dict[int, dict[str, Any]], piece: Any) -> int:
    """Adds one streamed tool-call piece to the call of its `index`; returns the size added."""
    if not isinstance(piece, dict):
        return 0
    index = piece["index"] if isinstance(piece.get("index"), int) else len(calls)
    call = calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    if isinstance(piece.get("id"), str):
        call["id"] = piece["id"]
    function = piece.get("function")
    added = 0
    for key in ("name", "arguments"):
        value = function.get(key) if isinstance(function, dict) else None
        if isinstance(value, str):
            call["function"][key] += value
            added += len(value)
    return added


async def _with_role_and_finish(
    chunks: AsyncIterator[Chunk], answer: Answer, include_usage: bool
) -> AsyncIterator[Chunk]:
    """Frames a program's output as OpenAI does: the role first, a finish_reason last."""
    started = finished = False
    usage = None
    async for chunk in chunks:
        if not started:
            started = True
            if not any("role" in (c.get("delta") or {}) for c in chunk.get("choices", [])):
                yield answer.chunk(delta={"role": "assistant", "content": ""})
        usage = chunk.get("usage") or usage
        finished = finished or any(c.get("finish_reason") for c in chunk.get("choices", []))
        if chunk.get("choices") or not include_usage:
            yield chunk
    if not started:
        yield answer.chunk(delta={"role": "assistant", "content": ""})
    if not finished:
        yield answer.chunk(finish_reason="stop")
    if include_usage and usage:
        yield answer.usage_chunk(usage)
