"""The seed's ``monitoring.services.metrics_collector``."""

from . import MetricsCollector

__all__ = ["MetricsCollector"]
