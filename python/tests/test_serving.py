"""Serving integration through the real stack: a FastAPI app under uvicorn with the ASGI
middleware under load while `modelwatch serve` is stopped and restarted — no request
fails, and every sample is delivered or counted as dropped. Then Flask (WSGI) and the
decorator."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List

import httpx
import pytest

import modelwatch
from conftest import Server

HERE = Path(__file__).parent


@pytest.fixture
def uvicorn_app(tmp_path: Path) -> Iterator[tuple[str, Server]]:
    server = Server(tmp_path / "served.db").start()
    env = {**os.environ, "MW_URL": server.url, "PYTHONPATH": str(HERE)}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serving_app:app", "--port", "0", "--log-level", "info", "--no-access-log"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=HERE, start_new_session=True,
    )
    assert process.stderr is not None
    url = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not url:
        line = process.stderr.readline()
        if not line:
            break
        if "Uvicorn running on " in line:
            url = line.split("Uvicorn running on ", 1)[1].split()[0]
    if not url:
        process.kill()
        raise RuntimeError("uvicorn did not start")
    # Keep reading uvicorn's log so it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in process.stderr or []], daemon=True).start()
    try:
        yield url, server
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.stop()


def test_no_request_fails_while_modelwatch_restarts(uvicorn_app: tuple[str, Server]) -> None:
    url, server = uvicorn_app
    statuses: List[int] = []
    failures: List[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            while not stop.is_set():
                try:
                    statuses.append(client.post("/predict", json={"a": 0.7, "b": 0.6}).status_code)
                except httpx.HTTPError as error:
                    failures.append(repr(error))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    server.stop()  # modelwatch is down: samples wait, then overflow the buffer of 15
    time.sleep(2.0)
    server.start()  # same port
    time.sleep(1.5)
    stop.set()
    for worker in workers:
        worker.join()

    assert failures == [] and statuses and set(statuses) == {200}, (failures, set(statuses))
    with httpx.Client(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + 20
        stats = client.post("/flush").json()
        while stats["pending"] and time.monotonic() < deadline:
            time.sleep(0.2)
            stats = client.post("/flush").json()
    assert stats["requests"] == len(statuses), stats
    assert stats["pending"] == 0, stats
    assert stats["dropped"] > 0, stats  # the outage overflowed the buffer
    assert stats["delivered"] + stats["dropped"] == stats["recorded"], stats
    # What was delivered is in the store: three metrics per window.
    reader = modelwatch.MetricsCollector(modelwatch.Client(server.url))
    stored = sum(
        reader.history("served", "v1", metric, hours=1).count for metric in ("latency", "throughput", "error_rate")
    )
    assert stored == stats["delivered"], (stored, stats)
    total = sum(p.value * 0.2 for p in reader.history("served", "v1", "throughput", hours=1).points)
    assert total > 0
    reader.backend.close()


def test_flask_routes_and_the_decorator_are_measured(tmp_path: Path) -> None:
    from flask import Flask

    database = modelwatch.Database(str(tmp_path / "flask.db"))
    recorder = modelwatch.Recorder(database, interval=3600)
    app = Flask(__name__)

    @app.post("/predict")
    def predict() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/broken")
    def broken() -> dict[str, bool]:
        raise RuntimeError("model crashed")

    app.wsgi_app = modelwatch.WSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, routes={"/predict": ("flasky", "v1"), "POST /broken": ("flasky", "v1")}, recorder=recorder
    )

    @modelwatch.monitor(model="plain", version="v2", recorder=recorder)
    def score(x: float) -> float:
        if x < 0:
            raise ValueError("negative")
        return x * 2

    client = app.test_client()

    def call(method: str, path: str) -> int:
        # A WSGI server closes the body once sent; the test client does on close().
        response = client.open(path, method=method)
        response.close()
        return response.status_code

    for _ in range(3):
        assert call("POST", "/predict") == 200
    assert call("POST", "/broken") == 500
    assert call("GET", "/elsewhere") == 404  # not a monitored route
    assert score(2.0) == 4.0
    with pytest.raises(ValueError):
        score(-1.0)
    assert recorder.flush()
    stats = recorder.stats()
    assert stats["requests"] == 6 and stats["recorded"] == 6 and stats["delivered"] == 6, stats
    collector = modelwatch.MetricsCollector(database)
    error_rate = collector.history("flasky", "v1", "error_rate").points
    assert [p.value for p in error_rate] == [0.25]
    assert [p.value for p in collector.history("plain", "v2", "error_rate").points] == [0.5]
    recorder.close()
    database.close()
