"""The runnable examples under examples/python run and do what they say."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_fastapi_example_raises_an_alert_when_the_model_slows_down(tmp_path: Path) -> None:
    env = {**os.environ, "MODELWATCH_DB": str(tmp_path / "example.db"), "PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples/python/fastapi_server.py")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "🚨 high: Latency Rise: latency of fraud_detector/v2.1 degraded" in done.stdout, done.stdout
