"""The seed's enums (``MetricType``, ``AlertSeverity``, ``AlertStatus``) and the other
closed vocabularies of results. Values are the JSON API's strings; ``str()`` and
f-strings give the value (``f"{alert.severity}"`` is ``high``) on every Python."""

from __future__ import annotations

from enum import Enum
from typing import Union


class _Value(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class MetricType(_Value):
    ACCURACY = "accuracy"
    PRECISION = "precision"
    RECALL = "recall"
    F1_SCORE = "f1_score"
    AUC_ROC = "auc_roc"
    AUC_PR = "auc_pr"
    MAE = "mae"
    MSE = "mse"
    RMSE = "rmse"
    R2_SCORE = "r2_score"
    MAPE = "mape"
    LATENCY = "latency"
    THROUGHPUT = "throughput"
    ERROR_RATE = "error_rate"


class CustomMetric(str):
    """A custom metric's name where a ``MetricType`` would stand; ``.value`` is the name."""

    @property
    def value(self) -> str:
        return str(self)


#: A metric as results carry it: a built-in ``MetricType`` or a custom metric's name.
Metric = Union[MetricType, CustomMetric]


def metric(name: str) -> Metric:
    try:
        return MetricType(name)
    except ValueError:
        return CustomMetric(name)


class AlertSeverity(_Value):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AlertStatus(_Value):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    SUPPRESSED = "suppressed"


class DegradationSeverity(_Value):
    """How bad a degradation is: the seed's bands, ``none`` when not degraded."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class DegradationStatus(_Value):
    OK = "ok"
    DEGRADED = "degraded"
    INSUFFICIENT_DATA = "insufficient_data"


class Direction(_Value):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class OverallHealth(_Value):
    EXCELLENT = "excellent"
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"
    UNKNOWN = "unknown"


class Trend(_Value):
    IMPROVING = "improving"
    STABLE = "stable"
    DEGRADING = "degrading"
