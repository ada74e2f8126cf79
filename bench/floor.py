"""The Python floor: a pass-through with no features, for bench/bench.py to measure beside the gateway.

It does the least any Python gateway must do: parse the request's JSON, forward it to the
upstream over a pooled keep-alive connection, and copy the answer's bytes back (streamed
as they arrive for a stream). No routing, no validation, no logs, no timeouts, no error
handling: what Python costs at the least, with a C HTTP parser (aiohttp) on uvloop.

    python bench/floor.py --port 8100 --upstream http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import uvloop
from aiohttp import ClientSession, TCPConnector, web


def make_app(upstream: str) -> web.Application:
    app = web.Application()

    async def open_session(app: web.Application) -> None:
        app["session"] = ClientSession(connector=TCPConnector(limit=256), auto_decompress=False)

    async def close_session(app: web.Application) -> None:
        await app["session"].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        stream = bool(body.get("stream"))
        # the upstream path: the bench names it (it serves a short and a long stream)
        path = request.headers.get("x-bench-path") or ("sse" if stream else "json")
        url = f"{upstream}/{path}/v1/chat/completions"
        async with app["session"].post(
            url, data=orjson.dumps(body), headers={"content-type": "application/json"}
        ) as answer:
            content_type = answer.headers.get("content-type", "application/json")
            if not stream:
                return web.Response(
                    body=await answer.read(), status=answer.status, headers={"content-type": content_type}
                )
            response = web.StreamResponse(status=answer.status, headers={"content-type": content_type})
            await response.prepare(request)
            async for piece in answer.content.iter_any():
                await response.write(piece)
            await response.write_eof()
            return response

    app.router.add_post("/v1/chat/completions", chat)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(make_app(args.upstream.rstrip("/")), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
