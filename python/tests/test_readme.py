"""The README's "From Python" quick start runs as written, on a fresh database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    section = README.read_text().split("## From Python", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    assert "collector = MetricsCollector()" in code
    env = {**os.environ, "MODELWATCH_DB": str(tmp_path / "quick.db")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "quick.db").exists()
