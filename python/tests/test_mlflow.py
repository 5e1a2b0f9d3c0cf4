"""modelwatch.mlflow with the real MLflow (target/mlflow-venv, installed by
scripts/setup): a run's metrics land in MLflow and in modelwatch at the same
timestamps, through log_metrics and through autolog, and val_loss is declared
lower-is-better from its name."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import modelwatch
from modelwatch._wire import parse_time

ROOT = Path(__file__).resolve().parents[2]
MLFLOW_PYTHON = ROOT / "target" / "mlflow-venv" / "bin" / "python"

SCRIPT = r'''
import json, sys
import mlflow
import modelwatch
import modelwatch.mlflow as mw_mlflow

tracking, database = sys.argv[1], sys.argv[2]
mlflow.set_tracking_uri(tracking)
collector = modelwatch.MetricsCollector(database)
with mlflow.start_run() as run:
    mw_mlflow.log_metrics({"accuracy": 0.91, "val_loss": 0.42}, step=1,
                          model_name="churn", model_version="v4", collector=collector)
    with mw_mlflow.autolog(model_name="churn", model_version="v4", collector=collector):
        mlflow.log_metric("accuracy", 0.93, step=2)
        mlflow.log_metrics({"val_loss": 0.35, "bad/name": 1.0}, step=2)
    mlflow.log_metric("accuracy", 0.2, step=3)  # after autolog: MLflow only
run_id = run.info.run_id
client = mlflow.tracking.MlflowClient()
logged = {key: [(m.timestamp, m.value) for m in client.get_metric_history(run_id, key)]
          for key in ("accuracy", "val_loss")}
stored = {key: [(p.to_dict()["timestamp"], p.value) for p in
                collector.history("churn", "v4", key, hours=1).points]
          for key in ("accuracy", "val_loss")}
definitions = collector.backend.custom_metrics()
print(json.dumps({"logged": logged, "stored": stored, "definitions": definitions}))
'''


def test_metrics_go_to_mlflow_and_modelwatch_together(tmp_path: Path) -> None:
    assert MLFLOW_PYTHON.exists(), f"{MLFLOW_PYTHON} is missing: run scripts/setup"
    # MLflow's venv sees only the modelwatch package of this one, not its other packages.
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / "modelwatch").symlink_to(Path(modelwatch.__file__).parent)
    env = {**os.environ, "PYTHONPATH": str(packages), "MLFLOW_TRACKING_URI": ""}
    done = subprocess.run(
        [str(MLFLOW_PYTHON), "-c", SCRIPT, f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "mw.db")],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    logged, stored = result["logged"], result["stored"]
    assert [v for _, v in logged["accuracy"]] == [0.91, 0.93, 0.2]
    assert [v for _, v in stored["accuracy"]] == [0.91, 0.93]
    assert [v for _, v in stored["val_loss"]] == [0.42, 0.35]
    # Same timestamps on both sides.
    for key in ("accuracy", "val_loss"):
        for (ms, _), (text, _) in zip(logged[key], stored[key]):
            assert int(parse_time(text).timestamp() * 1000) == ms, (key, ms, text)
    assert result["definitions"] == [
        {"metric": "val_loss", "direction": "lower_is_better", "range": {"min": None, "max": None}}
    ]
    assert 'val_loss: lower is better (inferred from "loss" in its name' in done.stderr
    assert "modelwatch did not record bad/name=1.0" in done.stderr
