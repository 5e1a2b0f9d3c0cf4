"""MLflow and modelwatch together: a run's metrics logged to both at once.

    import modelwatch.mlflow as mw_mlflow

    with mlflow.start_run():
        mw_mlflow.log_metrics({"accuracy": 0.94, "val_loss": 0.31}, step=3,
                              model_name="churn", model_version="v4")

or, for code that already calls ``mlflow.log_metric``/``log_metrics`` (an autologging
integration included)::

    with mw_mlflow.autolog(model_name="churn", model_version="v4"):
        trainer.fit(...)

Both log to MLflow first, exactly as MLflow's own functions, then record the same
values at the same timestamps in modelwatch (``collector``, default: a
``MetricsCollector()`` on ``MODELWATCH_DB``). Keys are metric names (a built-in such as
``accuracy`` or a custom metric); a custom metric that is not declared yet and whose
name says its direction (``val_loss``: lower is better) is declared so, as
``modelwatch mlflow import`` does, and the inference is printed. A value modelwatch
refuses (a name with ``/``, NaN) is skipped with a warning: monitoring never stops
training. ``modelwatch mlflow import`` remains the way to bring registered models'
history over afterwards.
"""

from __future__ import annotations

import importlib
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Mapping, Optional, Set

from . import _native
from ._errors import ModelwatchError
from ._remote import Client
from .services import MetricsCollector

_declared: Set[str] = set()
_declared_lock = threading.Lock()


def _mlflow() -> Any:
    try:
        mlflow = importlib.import_module("mlflow")
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("modelwatch.mlflow needs MLflow: pip install mlflow") from error
    return mlflow


def _declare(collector: MetricsCollector, key: str) -> None:
    """Declares a custom metric's inferred direction once per process (embedded mode)."""
    with _declared_lock:
        if key in _declared:
            return
        _declared.add(key)
    inferred = _native.infer_direction(key)
    if inferred is None or isinstance(collector.backend, Client):
        return
    try:
        # A declared metric keeps its declaration.
        if any(d["metric"] == key for d in collector.backend.custom_metrics()):
            return
        collector.backend.define_metric(key, inferred[0] == "lower_is_better", None, None)
    except ModelwatchError:
        return  # a name modelwatch refuses: recording reports it
    print(f"modelwatch: {key}: {inferred[0].replace('_', ' ')} (inferred from {inferred[1]}; "
          f"`modelwatch metrics define {key}` overrides)", file=sys.stderr)


def _record(collector: MetricsCollector, metrics: Mapping[str, float], model_name: str, model_version: str,
            timestamp: int) -> None:
    for key, value in metrics.items():
        if _native.infer_direction(key) is not None and key not in _BUILT_IN:
            _declare(collector, key)
        try:
            collector.record_metric(model_name=model_name, model_version=model_version, metric_type=key,
                                    metric_value=float(value), timestamp=timestamp)
        except (ModelwatchError, ValueError, TypeError) as error:
            warnings.warn(f"modelwatch did not record {key}={value!r}: {error}", stacklevel=3)


_BUILT_IN = {
    "accuracy", "precision", "recall", "f1_score", "auc_roc", "auc_pr", "mae", "mse", "rmse", "r2_score",
    "mape", "latency", "throughput", "error_rate",
}


def log_metric(key: str, value: float, step: Optional[int] = None, *, model_name: str, model_version: str,
               collector: Optional[MetricsCollector] = None) -> None:
    """``mlflow.log_metric`` and ``MetricsCollector.record_metric`` at one timestamp."""
    log_metrics({key: value}, step=step, model_name=model_name, model_version=model_version, collector=collector)


def log_metrics(metrics: Mapping[str, float], step: Optional[int] = None, *, model_name: str, model_version: str,
                collector: Optional[MetricsCollector] = None) -> None:
    """``mlflow.log_metrics`` and one ``record_metric`` per key, at one timestamp."""
    mlflow = _mlflow()
    timestamp = _native.now_ms()
    for key, value in metrics.items():
        mlflow.log_metric(key, value, step=step, timestamp=timestamp)
    _record(collector or MetricsCollector(), metrics, model_name, model_version, timestamp)


@contextmanager
def autolog(*, model_name: str, model_version: str, collector: Optional[MetricsCollector] = None) -> Iterator[None]:
    """While open, every ``mlflow.log_metric``/``mlflow.log_metrics`` call (yours or an
    autologging integration's) is also recorded in modelwatch for ``model_name`` and
    ``model_version``; MLflow's functions are restored on exit."""
    mlflow = _mlflow()
    chosen = collector or MetricsCollector()
    original_metric, original_metrics = mlflow.log_metric, mlflow.log_metrics

    def log_metric_too(key: str, value: float, step: Optional[int] = None, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timestamp", _native.now_ms())
        result = original_metric(key, value, step, *args, **kwargs)
        _record(chosen, {key: value}, model_name, model_version, int(kwargs["timestamp"]))
        return result

    def log_metrics_too(metrics: Dict[str, float], step: Optional[int] = None, *args: Any, **kwargs: Any) -> Any:
        timestamp = _native.now_ms()
        result = original_metrics(metrics, step, *args, **kwargs)
        _record(chosen, metrics, model_name, model_version, timestamp)
        return result

    mlflow.log_metric, mlflow.log_metrics = log_metric_too, log_metrics_too
    try:
        yield
    finally:
        mlflow.log_metric, mlflow.log_metrics = original_metric, original_metrics
        chosen.flush()
