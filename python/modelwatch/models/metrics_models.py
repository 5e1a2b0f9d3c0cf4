"""The seed's ``monitoring.models.metrics_models``."""

from .._enums import MetricType
from .._wire import DegradationResult, MetricHistory, PerformanceHistory, PerformanceMetric

__all__ = ["DegradationResult", "MetricHistory", "MetricType", "PerformanceHistory", "PerformanceMetric"]
