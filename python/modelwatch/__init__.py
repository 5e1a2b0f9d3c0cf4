"""modelwatch for Python: record model metrics, detect degradation, alert.

The seed's API in two modes, with the same results::

    from modelwatch import MetricsCollector, DegradationDetector, AlertService, MetricType

    collector = MetricsCollector()                 # embedded: MODELWATCH_DB or the CLI's database
    collector = MetricsCollector("metrics.db")     # an SQLite file, "memory", or postgres://…
    collector = MetricsCollector(modelwatch.Client("http://127.0.0.1:7878", token="…"))  # remote

The Rust engine is compiled in (``modelwatch._native``); the ``modelwatch`` command of
the same wheel is the CLI, dashboard included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _native
from ._enums import (
    AlertSeverity,
    AlertStatus,
    CustomMetric,
    DegradationSeverity,
    DegradationStatus,
    Direction,
    MetricType,
    OverallHealth,
    Trend,
)
from ._errors import (
    AuthError,
    ConflictError,
    ModelwatchError,
    NotFoundError,
    StoreError,
    UnavailableError,
    ValidationError,
)
from ._remote import Client
from ._wire import (
    Alert,
    AlertSummary,
    DegradationResult,
    LabelsLogged,
    MetricDefinition,
    MetricHistory,
    PerformanceHistory,
    PerformanceMetric,
    Point,
    PredictionConfig,
    PredictionsLogged,
    Rule,
    SeriesHistory,
)
from .services import (
    AlertConfig,
    AlertService,
    Database,
    DegradationDetector,
    MetricsCollector,
    connect,
)

if TYPE_CHECKING:
    from .serving import ASGIMiddleware, Recorder, WSGIMiddleware, monitor

__version__: str = _native.__version__

__all__ = [
    "Alert",
    "AlertConfig",
    "AlertService",
    "AlertSeverity",
    "AlertStatus",
    "AlertSummary",
    "ASGIMiddleware",
    "AuthError",
    "Client",
    "ConflictError",
    "CustomMetric",
    "Database",
    "DegradationDetector",
    "DegradationResult",
    "DegradationSeverity",
    "DegradationStatus",
    "Direction",
    "LabelsLogged",
    "MetricDefinition",
    "MetricHistory",
    "MetricType",
    "MetricsCollector",
    "ModelwatchError",
    "NotFoundError",
    "OverallHealth",
    "PerformanceHistory",
    "PerformanceMetric",
    "Point",
    "PredictionConfig",
    "PredictionsLogged",
    "Recorder",
    "Rule",
    "SeriesHistory",
    "StoreError",
    "Trend",
    "UnavailableError",
    "ValidationError",
    "WSGIMiddleware",
    "connect",
    "monitor",
]

_SERVING = {"ASGIMiddleware", "WSGIMiddleware", "Recorder", "monitor"}


def __getattr__(name: str) -> Any:
    # The serving helpers load on first use: most programs never need them.
    if name in _SERVING:
        from . import serving

        return getattr(serving, name)
    raise AttributeError(f"module 'modelwatch' has no attribute {name!r}")
