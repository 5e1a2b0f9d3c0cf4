"""Serving integration: latency, throughput and error rate per model version, measured
around requests or calls and sent to modelwatch in the background.

- ``ASGIMiddleware`` (FastAPI, Starlette): ``app.add_middleware(modelwatch.ASGIMiddleware,
  routes={"/predict": ("fraud_detector", "v2.1")})``.
- ``WSGIMiddleware`` (Flask): ``app.wsgi_app = modelwatch.WSGIMiddleware(app.wsgi_app,
  routes={...})``.
- ``@modelwatch.monitor(model="fraud_detector", version="v2.1")`` for plain functions,
  sync or async.

A request only adds to an in-process aggregate (a lock and three additions). A
``Recorder`` thread turns each aggregate into samples every ``interval`` seconds —
``latency`` (mean milliseconds), ``throughput`` (requests per second) and ``error_rate``
(share of requests that raised or answered 5xx) at the interval's end — and sends them
in batches. When modelwatch is slow, down or restarting, samples wait in a bounded
buffer and are sent once it answers; when the buffer is full the oldest are dropped,
counted (``Recorder.stats()``) and logged. A request never waits for modelwatch and never
fails because of it.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import (
    Any,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    MutableMapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from ._errors import ModelwatchError
from .services import Backend, Target, connect

log = logging.getLogger("modelwatch")

#: (model, version) of a monitored route.
ModelVersion = Tuple[str, str]
#: Routes to monitor: ``{"/predict": ("fraud_detector", "v2.1")}`` (a path, or
#: ``"POST /predict"`` for one method), or a function of (method, path) returning the
#: model version or ``None``.
Routes = Union[Mapping[str, ModelVersion], Callable[[str, str], Optional[ModelVersion]]]

#: Samples kept while modelwatch does not answer (three per model version per interval).
DEFAULT_BUFFER = 100_000


@dataclass
class _Window:
    requests: int = 0
    errors: int = 0
    latency_sum: float = 0.0


class Recorder:
    """Aggregates observations per model version in process and sends them to
    ``target`` (a database, a ``Client``, a location or URL; default ``MODELWATCH_DB``)
    every ``interval`` seconds from a background thread."""

    def __init__(
        self,
        target: Target = None,
        *,
        interval: float = 10.0,
        buffer: int = DEFAULT_BUFFER,
        token: Optional[str] = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._target = target
        self._token = token
        self._backend: Optional[Backend] = None
        self.interval = interval
        self._lock = threading.Lock()
        self._windows: Dict[ModelVersion, _Window] = {}
        self._window_start = time.time()
        # (sequence, model, version, metric, timestamp ms, value), oldest first.
        self._pending: Deque[Tuple[int, str, str, str, int, float]] = deque()
        self._sequence = 0
        self._buffer = buffer
        self._send_lock = threading.Lock()
        self._counts = {"requests": 0, "recorded": 0, "delivered": 0, "dropped": 0}
        self._last_error: Optional[str] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelwatch-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the hot path ------------------------------------------------------------------

    def observe(self, model: str, version: str, seconds: float, error: bool = False) -> None:
        """Counts one request or call of ``model``/``version`` that took ``seconds``."""
        key = (model, version)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window()
            window.requests += 1
            window.latency_sum += seconds
            if error:
                window.errors += 1

    # -- the background side -----------------------------------------------------------

    def _roll(self) -> None:
        """Turns the current aggregates into pending samples."""
        now = time.time()
        with self._lock:
            windows, self._windows = self._windows, {}
            started, self._window_start = self._window_start, now
        if not windows:
            return
        elapsed = max(now - started, 1e-3)
        at = int(now * 1000)
        samples = []
        for (model, version), window in windows.items():
            self._counts["requests"] += window.requests
            samples.append((model, version, "latency", at, window.latency_sum * 1000 / window.requests))
            samples.append((model, version, "throughput", at, window.requests / elapsed))
            samples.append((model, version, "error_rate", at, window.errors / window.requests))
        with self._send_lock:
            numbered = []
            for sample in samples:
                self._sequence += 1
                numbered.append((self._sequence, *sample))
            self._counts["recorded"] += len(samples)
            self._pending.extend(numbered)
            overflow = len(self._pending) - self._buffer
            if overflow > 0:
                for _ in range(overflow):
                    self._pending.popleft()
                self._counts["dropped"] += overflow
                log.warning("modelwatch: dropped %d samples: the buffer of %d is full (%s)",
                            overflow, self._buffer, self._last_error or "modelwatch does not answer")

    def _send(self) -> bool:
        """Sends what is pending, one series at a time; False when modelwatch failed."""
        with self._send_lock:
            pending = list(self._pending)
        if not pending:
            return True
        series: Dict[Tuple[str, str, str], List[Tuple[int, int, float]]] = {}
        for sequence, model, version, metric, at, value in pending:
            series.setdefault((model, version, metric), []).append((sequence, at, value))
        delivered: set[int] = set()
        try:
            if self._backend is None:
                self._backend = connect(self._target, token=self._token)
            for (model, version, metric), points in series.items():
                self._backend.record_columns(
                    model, version, metric, [v for _, _, v in points], [t for _, t, _ in points]
                )
                delivered.update(sequence for sequence, _, _ in points)
            self._last_error = None
            return True
        except (ModelwatchError, OSError) as error:
            self._last_error = str(error)
            return False
        finally:
            if delivered:
                with self._send_lock:
                    before = len(self._pending)
                    self._pending = deque(p for p in self._pending if p[0] not in delivered)
                    self._counts["delivered"] += before - len(self._pending)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._roll()
            self._send()

    def flush(self) -> bool:
        """Aggregates and sends now; True when everything pending was delivered."""
        self._roll()
        return self._send()

    def stats(self) -> Dict[str, Any]:
        """``requests`` observed and aggregated; samples ``recorded``, ``delivered``,
        ``dropped`` (buffer full) and ``pending``: recorded = delivered + dropped + pending.
        ``last_error`` is why the last send failed, if it did."""
        with self._send_lock:
            return {**self._counts, "pending": len(self._pending), "last_error": self._last_error}

    def close(self, timeout: float = 5.0) -> None:
        """Stops the thread and sends what is left, trying for up to ``timeout`` seconds."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)
        deadline = time.monotonic() + timeout
        self._roll()
        while not self._send() and time.monotonic() < deadline:
            time.sleep(0.2)
        remaining = self.stats()["pending"]
        if remaining:
            log.warning("modelwatch: %d samples were not delivered (%s)", remaining, self._last_error)


_default: Optional[Recorder] = None
_default_lock = threading.Lock()


def default_recorder() -> Recorder:
    """The process's shared recorder, on ``MODELWATCH_DB`` (a location or an http URL)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Recorder()
        return _default


def _route_matcher(routes: Routes) -> Callable[[str, str], Optional[ModelVersion]]:
    if callable(routes):
        return routes
    table = dict(routes)

    def match(method: str, path: str) -> Optional[ModelVersion]:
        return table.get(f"{method} {path}") or table.get(path)

    return match


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIMiddleware:
    """Measures the named routes of an ASGI app (FastAPI, Starlette): latency until the
    app finished the response, errors as exceptions and 5xx answers."""

    def __init__(self, app: ASGIApp, *, routes: Routes, recorder: Optional[Recorder] = None) -> None:
        self.app = app
        self.match = _route_matcher(routes)
        self.recorder = recorder or default_recorder()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = self.match(scope.get("method", "GET"), scope.get("path", ""))
        if target is None:
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            self.recorder.observe(target[0], target[1], time.perf_counter() - started, True)
            raise
        self.recorder.observe(target[0], target[1], time.perf_counter() - started, status >= 500)


WSGIApp = Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WSGIMiddleware:
    """Measures the named routes of a WSGI app (Flask: ``app.wsgi_app =
    WSGIMiddleware(app.wsgi_app, routes=…)``): latency until the body was sent."""

    def __init__(self, app: WSGIApp, *, routes: Routes, recorder: Optional[Recorder] = None) -> None:
        self.app = app
        self.match = _route_matcher(routes)
        self.recorder = recorder or default_recorder()

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = self.match(environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", ""))
        if target is None:
            return self.app(environ, start_response)
        started = time.perf_counter()
        status = [500]

        def start(status_line: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                status[0] = int(status_line.split(" ", 1)[0])
            except ValueError:
                pass
            return start_response(status_line, headers, exc_info) if exc_info else start_response(status_line, headers)

        try:
            body = self.app(environ, start)
        except BaseException:
            self.recorder.observe(target[0], target[1], time.perf_counter() - started, True)
            raise
        return _Measured(body, lambda failed: self.recorder.observe(
            target[0], target[1], time.perf_counter() - started, failed or status[0] >= 500))


class _Measured:
    """A WSGI body that reports when the server closes it (the response was sent)."""

    def __init__(self, body: Iterable[bytes], done: Callable[[bool], None]) -> None:
        self.body = body
        self.done = done
        self.failed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body
        except BaseException:
            self.failed = True
            raise

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.failed)


F = TypeVar("F", bound=Callable[..., Any])


def monitor(*, model: str, version: str, recorder: Optional[Recorder] = None) -> Callable[[F], F]:
    """Measures every call of the decorated function (sync or async) as a request of
    ``model``/``version``: latency, throughput, and errors as raised exceptions."""

    def decorate(function: F) -> F:
        if asyncio.iscoroutinefunction(function):

            @functools.wraps(function)
            async def measured_async(*args: Any, **kwargs: Any) -> Any:
                chosen = recorder or default_recorder()
                started = time.perf_counter()
                try:
                    result = await function(*args, **kwargs)
                except BaseException:
                    chosen.observe(model, version, time.perf_counter() - started, True)
                    raise
                chosen.observe(model, version, time.perf_counter() - started, False)
                return result

            return cast(F, measured_async)

        @functools.wraps(function)
        def measured(*args: Any, **kwargs: Any) -> Any:
            chosen = recorder or default_recorder()
            started = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            except BaseException:
                chosen.observe(model, version, time.perf_counter() - started, True)
                raise
            chosen.observe(model, version, time.perf_counter() - started, False)
            return result

        return cast(F, measured)

    return decorate
