"""The app bench/python/run.py loads with wrk under uvicorn: GET /predict is monitored
by modelwatch.ASGIMiddleware; a probe around the middleware and another around the
app inside it time each request, so their difference is the middleware's own cost."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List

import modelwatch
from modelwatch.serving import ASGIMiddleware, Message, Receive, Scope, Send

recorder = modelwatch.Recorder(os.environ.get("MW_DB", "memory"), interval=1.0)
inner_ns: List[int] = []
overhead_ns: List[int] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stats":
        overhead = sorted(overhead_ns)
        body = repr({
            "requests": len(overhead),
            "p50_us": overhead[len(overhead) // 2] / 1000 if overhead else None,
            "p99_us": overhead[int(len(overhead) * 0.99)] / 1000 if overhead else None,
            "max_us": overhead[-1] / 1000 if overhead else None,
            "recorder": recorder.stats(),
        }).encode()
    else:
        body = b'{"prediction": true}'
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def timed_app(scope: Scope, receive: Receive, send: Send) -> None:
    started = time.perf_counter_ns()
    await app(scope, receive, send)
    inner_ns.append(time.perf_counter_ns() - started)


monitored = ASGIMiddleware(timed_app, routes={"/predict": ("bench", "v1")}, recorder=recorder)


async def probe(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http" or scope["path"] != "/predict":
        await monitored(scope, receive, send)
        return
    started = time.perf_counter_ns()
    await monitored(scope, receive, send)
    total = time.perf_counter_ns() - started
    overhead_ns.append(total - inner_ns.pop())
