"""Typed results: the JSON API's objects with attribute access.

Every record wraps a dict of the HTTP API's wire types (``crates/http/src/wire``): in
embedded mode the extension serialises those types itself (``crates/python/src/convert.rs``
accepts nothing else), in remote mode ``modelwatch serve`` sends them. So field names have
one source, the wire types, and ``to_dict()`` returns exactly the JSON API's object. The
annotations below declare those fields for type checkers; ``python/tests/test_api.py``
checks them against what the engine sends and against the API's OpenAPI schemas (every
field of every schema a record wraps), so a renamed or added field fails a test instead
of drifting. This module is the one place in the package that knows the wire shapes.

Attribute values are typed: enums for closed vocabularies, ``datetime`` (UTC) for
times, records for nested objects. ``from`` is ``from_``. The seed's names work too
(``metric_type``, ``model_name``, ``model_version``, ``metric_value``, ``rule_name``…).
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, List, Mapping, Optional

from ._enums import (
    AlertSeverity,
    AlertStatus,
    DegradationSeverity,
    DegradationStatus,
    Direction,
    Metric,
    OverallHealth,
    Trend,
)
from ._enums import metric as _metric

if TYPE_CHECKING:
    import pandas


def parse_time(text: str) -> datetime:
    """An RFC 3339 time from the engine (``2024-05-01T12:00:00.000Z``) as an aware datetime."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text).astimezone(timezone.utc)


class Record:
    """A JSON API object: attributes typed, ``to_dict()`` the JSON form."""

    #: Converters of fields whose attribute is not the JSON value itself.
    _convert: ClassVar[Dict[str, Callable[[Any], Any]]] = {}
    #: Attribute names that read another field (the seed's names, ``from_``).
    _aliases: ClassVar[Dict[str, str]] = {}

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", dict(data))

    @classmethod
    def field_names(cls) -> List[str]:
        """The JSON fields this record declares, in declaration order."""
        names: List[str] = []
        for klass in reversed(cls.__mro__):
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                if name.startswith("_") or "ClassVar" in str(annotation) or name in cls._aliases:
                    continue
                key = "from" if name == "from_" else name
                if key not in names:
                    names.append(key)
        return names

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            key = self._aliases.get(name, "from" if name == "from_" else name)
            data = object.__getattribute__(self, "_data")
            if key not in data and key not in type(self).field_names():
                raise AttributeError(f"{type(self).__name__} has no field {name!r}")
            raw = data.get(key)
            convert = self._convert.get(key)
            value = convert(raw) if convert is not None and raw is not None else raw
            object.__setattr__(self, name, value)
            return value

    def to_dict(self) -> Dict[str, Any]:
        """The JSON API's object (times as RFC 3339 text, enums as their values)."""
        data: Dict[str, Any] = copy.deepcopy(object.__getattribute__(self, "_data"))
        return data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and type(other) is type(self) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        data = object.__getattribute__(self, "_data")
        shown = ", ".join(f"{k}={v!r}" for k, v in data.items() if not isinstance(v, (list, dict)))
        return f"{type(self).__name__}({shown})"


def _records(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda items: [kind(item) for item in items]


_time = parse_time
_SEED_NAMES = {
    "model_name": "model",
    "model_version": "version",
    "metric_type": "metric",
}


class PerformanceMetric(Record):
    """One sample (``POST /api/v1/metrics``' item, ``SampleInput``, with its time): the
    seed's ``PerformanceMetric``."""

    model: str
    version: str
    metric: Metric
    value: float
    timestamp: datetime
    dataset: Optional[str]
    # The seed's names.
    model_name: str
    model_version: str
    metric_type: Metric
    metric_value: float
    _convert = {"metric": _metric, "timestamp": _time}
    _aliases = {**_SEED_NAMES, "metric_value": "value"}



class Point(Record):
    timestamp: datetime
    value: float
    dataset: Optional[str]
    _convert = {"timestamp": _time}


class SeriesHistory(Record):
    """A series' points over a time range (``GET …/metrics/{metric}`` with every point:
    ``downsampled`` is false and ``buckets`` empty); ``to_pandas()`` when pandas is
    installed."""

    model: str
    version: str
    metric: Metric
    dataset: str
    direction: Direction
    from_: datetime
    to: Optional[datetime]
    count: int
    downsampled: bool
    points: List[Point]
    buckets: List[Dict[str, Any]]
    _convert = {
        "metric": _metric,
        "direction": Direction,
        "from": _time,
        "to": _time,
        "points": _records(Point),
    }
    _aliases = dict(_SEED_NAMES)

    def to_pandas(self) -> "pandas.DataFrame":
        """A DataFrame indexed by timestamp (UTC) with ``value`` and ``dataset`` columns."""
        try:
            import pandas as pd
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas() needs pandas: pip install pandas") from error
        points = object.__getattribute__(self, "_data")["points"]
        frame = pd.DataFrame(
            {
                "value": [p["value"] for p in points],
                "dataset": [p.get("dataset") for p in points],
            },
            index=pd.DatetimeIndex(
                pd.to_datetime([p["timestamp"] for p in points], utc=True), name="timestamp"
            ),
        )
        result: "pandas.DataFrame" = frame
        return result


class DegradationResult(Record):
    """``GET …/degradation``'s result: the seed's ``is_degraded``, ``percentage_change``,
    ``severity`` and ``recommendation``, with the test behind the verdict."""

    model: str
    version: str
    metric: Metric
    direction: Direction
    current_value: Optional[float]
    baseline_value: Optional[float]
    reference_value: Optional[float]
    absolute_change: Optional[float]
    percentage_change: Optional[float]
    degradation_percentage: Optional[float]
    is_degraded: bool
    severity: DegradationSeverity
    recommendation: str
    baseline_samples: int
    comparison_samples: int
    reference_samples: int
    p_value: Optional[float]
    method: str
    status: DegradationStatus
    change_started_at: Optional[datetime]
    alpha: float
    min_degradation_percentage: float
    model_name: str
    model_version: str
    metric_type: Metric
    _convert = {
        "metric": _metric,
        "direction": Direction,
        "severity": DegradationSeverity,
        "status": DegradationStatus,
        "change_started_at": _time,
    }
    _aliases = dict(_SEED_NAMES)



class MetricHistory(Record):
    """One metric of a performance history (the seed's metric summary)."""

    metric: Metric
    direction: Direction
    count: int
    current_value: Optional[float]
    mean: Optional[float]
    min: Optional[float]
    max: Optional[float]
    std: Optional[float]
    trend: Trend
    change_percentage: Optional[float]
    slope_per_day: Optional[float]
    trend_p_value: Optional[float]
    trend_points: int
    health_score: Optional[float]
    open_alerts: int
    metric_type: Metric
    _convert = {"metric": _metric, "direction": Direction, "trend": Trend}
    _aliases = {"metric_type": "metric"}



class PerformanceHistory(Record):
    """``GET …/history``: health, trend and a summary per metric."""

    model: str
    version: str
    from_: datetime
    to: datetime
    metric_summaries: List[MetricHistory]
    overall_health: OverallHealth
    health_score: Optional[float]
    health_trend: Trend
    health_reasons: List[str]
    health_formula: str
    total_snapshots: int
    _convert = {
        "from": _time,
        "to": _time,
        "metric_summaries": _records(MetricHistory),
        "overall_health": OverallHealth,
        "health_trend": Trend,
    }
    _aliases = dict(_SEED_NAMES)


class Rule(Record):
    """An alert rule (``/api/v1/rules``). Threshold rules carry ``comparison_operator``
    and ``threshold_value``; degradation rules ``max_degradation_percentage``,
    ``baseline_window_hours`` and how they compare (``comparison``, ``comparison_hours``,
    ``seasonal``, ``alpha``); change-point rules ``change_direction``, a minimum shift
    and a false-alarm interval; no-data rules ``no_data_minutes`` and/or
    ``no_data_intervals`` (``condition_type`` says which). ``dataset`` is the dataset
    whose series it watches (``"default"``), or ``"*"`` for each dataset separately.
    ``metric`` is one metric, or ``"*"`` (no-data rules only) for the whole version."""

    id: str
    name: str
    model: str
    version: Optional[str]
    metric: Metric
    dataset: str
    severity: AlertSeverity
    enabled: bool
    created_at: datetime
    updated_at: datetime
    cooldown_minutes: int
    notify_channels: List[str]
    condition_type: str
    comparison_operator: Optional[str]
    threshold_value: Optional[float]
    tolerance: Optional[float]
    clear_threshold: Optional[float]
    max_degradation_percentage: Optional[float]
    baseline_window_hours: Optional[int]
    clear_percentage: Optional[float]
    comparison: Optional[str]
    comparison_hours: Optional[int]
    seasonal: Optional[str]
    alpha: Optional[float]
    change_direction: Optional[str]
    min_shift_percentage: Optional[float]
    min_shift_sd: Optional[float]
    false_alarm_interval_samples: Optional[int]
    false_alarm_interval_hours: Optional[float]
    no_data_minutes: Optional[float]
    no_data_intervals: Optional[float]
    for_evaluations: int
    clear_after_evaluations: int
    auto_resolve: bool
    rule_id: str
    rule_name: str
    model_name: str
    model_version: Optional[str]
    metric_type: Metric
    _convert = {
        "metric": _metric,
        "severity": AlertSeverity,
        "created_at": _time,
        "updated_at": _time,
    }
    _aliases = {**_SEED_NAMES, "rule_id": "id", "rule_name": "name"}



class Alert(Record):
    """An alert (``/api/v1/alerts``). ``dataset`` is absent (``None``) for the default
    dataset. ``metric`` is ``"*"`` for an alert about a whole version; its no-data
    ``trigger`` then lists ``last_samples`` (the metrics seen last, each with ``at``).
    ``label_coverage`` is set for a metric computed from predictions: the share of its
    window's predictions that had their label when the alert was decided."""

    id: str
    rule_id: str
    rule_name: str
    model: str
    version: str
    dataset: Optional[str]
    metric: Metric
    severity: AlertSeverity
    status: AlertStatus
    message: str
    value: float
    worst_value: float
    trigger: Dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    notified: bool
    hold_reason: Optional[str]
    acknowledged_by: Optional[str]
    acknowledged_at: Optional[datetime]
    resolved_by: Optional[str]
    resolved_at: Optional[datetime]
    resolution_notes: Optional[str]
    label_coverage: Optional[float]
    alert_id: str
    model_name: str
    model_version: str
    metric_type: Metric
    _convert = {
        "metric": _metric,
        "severity": AlertSeverity,
        "status": AlertStatus,
        "first_seen": _time,
        "last_seen": _time,
        "acknowledged_at": _time,
        "resolved_at": _time,
    }
    _aliases = {**_SEED_NAMES, "alert_id": "id"}



class AlertSummary(Record):
    """``GET /api/v1/alerts/summary``: counts by status and severity."""

    model: Optional[str]
    total_count: int
    active_count: int
    acknowledged_count: int
    resolved_count: int
    suppressed_count: int
    critical_count: int
    high_count: int
    medium_count: int
    low_count: int


class MetricDefinition(Record):
    """A metric's direction and valid range (``metrics define``)."""

    metric: Metric
    direction: Direction
    range: Dict[str, Optional[float]]
    _convert = {"metric": _metric, "direction": Direction}


class PredictionsLogged(Record):
    """``POST /api/v1/predictions``: what a batch of predictions did."""

    accepted: int
    duplicates: int
    labelled: int
    too_old: int
    windows_recomputed: int
    windows_judged: int
    samples_written: int


class LabelsLogged(Record):
    """``POST /api/v1/predictions/labels``: what a batch of labels did (``accepted``
    is ``labelled + pending``)."""

    accepted: int
    labelled: int
    pending: int
    duplicates: int
    windows_recomputed: int
    windows_judged: int
    samples_written: int


class PredictionConfig(Record):
    """``GET``/``PUT /api/v1/models/{model}/prediction-config``: how a model's predictions
    and labels become metrics (``configured`` is false for the defaults of a model
    without one)."""

    model: str
    window: str
    task: str
    threshold: float
    min_coverage: float
    max_label_delay: str
    configured: bool
