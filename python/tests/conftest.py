"""Fixtures: a real `modelwatch serve` (the wheel's own command) on a temporary SQLite
file, and the seed's three services in embedded and remote mode on that one file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional

import pytest

import modelwatch


def modelwatch_command() -> str:
    """The `modelwatch` command installed beside this interpreter (the wheel's)."""
    found = Path(sys.executable).parent / "modelwatch"
    if not found.exists():
        raise RuntimeError(f"no modelwatch command beside {sys.executable}: install the package first")
    return str(found)


class Server:
    def __init__(self, db: Path, *extra: str, env: Optional[Dict[str, str]] = None) -> None:
        self.db = db
        self.extra = list(extra)
        self.env = {**os.environ, "MODELWATCH_EVAL_INTERVAL": "1h", **(env or {})}
        self.process: Optional[subprocess.Popen[str]] = None
        self.url = ""
        self.address = "127.0.0.1:0"

    def start(self) -> "Server":
        command: List[str] = [modelwatch_command(), "--db", str(self.db), "serve", "--listen", self.address, *self.extra]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=self.env, start_new_session=True)
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"modelwatch serve exited with {self.process.wait()}")
            if line.startswith("modelwatch listening on "):
                self.url = line.split(" on ", 1)[1].split()[0]
                # A restart listens on the same port, so clients keep their URL.
                self.address = self.url.removeprefix("http://")
                return self
        raise RuntimeError("modelwatch serve did not start within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared") / "modelwatch.db"


@pytest.fixture(scope="session")
def server(db_path: Path) -> Iterator[Server]:
    started = Server(db_path).start()
    yield started
    started.stop()


class Services(NamedTuple):
    collector: modelwatch.MetricsCollector
    detector: modelwatch.DegradationDetector
    alert_service: modelwatch.AlertService


@pytest.fixture(scope="session")
def embedded(db_path: Path) -> modelwatch.MetricsCollector:
    return modelwatch.MetricsCollector(str(db_path))


@pytest.fixture(scope="session")
def remote(server: Server) -> modelwatch.MetricsCollector:
    return modelwatch.MetricsCollector(modelwatch.Client(server.url))


@pytest.fixture(params=["embedded", "remote"])
def services(request: pytest.FixtureRequest) -> Services:
    collector = request.getfixturevalue(request.param)
    detector = modelwatch.DegradationDetector(collector)
    return Services(collector, detector, modelwatch.AlertService(detector))
