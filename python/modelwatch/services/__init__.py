"""The seed's services: ``MetricsCollector``, ``DegradationDetector``, ``AlertService``.

Each works on a *backend*: an embedded ``Database`` (``modelwatch._native``: the Rust
engine on an SQLite file, ``memory`` or PostgreSQL — the same database the CLI opens) or
a remote ``Client`` (``modelwatch serve``). Both answer the same calls with the same JSON
objects; the services turn them into the typed records of ``_wire``.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import threading
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .. import _native
from .._enums import AlertSeverity, AlertStatus, MetricType
from .._errors import ValidationError
from .._remote import MAX_EVENTS, Client
from .._wire import (
    Alert,
    AlertSummary,
    DegradationResult,
    LabelsLogged,
    MetricDefinition,
    PerformanceHistory,
    PerformanceMetric,
    PredictionConfig,
    PredictionsLogged,
    Rule,
    SeriesHistory,
    parse_time,
)

if TYPE_CHECKING:
    import pandas

Database = _native.Database
#: Where the services read and write: an embedded database or a server.
Backend = Union[_native.Database, Client]
#: What the services accept for a backend: a backend, a database location (an SQLite
#: path, ``sqlite:PATH``, ``postgres://…``, ``memory``), an ``http(s)://`` URL, or
#: ``None`` for ``MODELWATCH_DB`` or the CLI's default database.
Target = Union[_native.Database, Client, str, "os.PathLike[str]", None]
#: A time: an aware ``datetime`` (naive ones are taken as UTC), epoch milliseconds, or
#: RFC 3339 text.
Time = Union[datetime, int, str]

_opened: Dict[str, Backend] = {}
_opened_lock = threading.Lock()


def connect(target: Target = None, *, token: Optional[str] = None) -> Backend:
    """The backend for ``target``. Locations and URLs are opened once per process and
    shared (one ``memory`` store for everyone who names it), and closed — what is queued
    stored — when the interpreter exits."""
    if isinstance(target, (_native.Database, Client)):
        return target
    if target is None:
        location = os.environ.get("MODELWATCH_DB") or _native.default_location()
    else:
        location = os.fspath(target)
    with _opened_lock:
        backend = _opened.get(location)
        if backend is None:
            if location.startswith(("http://", "https://")):
                backend = Client(location, token=token or os.environ.get("MODELWATCH_TOKEN"))
            else:
                backend = _native.Database(location)
            _opened[location] = backend
        return backend


@atexit.register
def _close_opened() -> None:
    with _opened_lock:
        backends = list(_opened.values())
        _opened.clear()
    for backend in backends:
        try:
            backend.close()
        except Exception as error:  # noqa: BLE001 - reported, the interpreter is exiting
            print(f"modelwatch: closing {backend.location}: {error}", file=sys.stderr)


def _name(value: Union[MetricType, AlertSeverity, AlertStatus, str]) -> str:
    return value.value if isinstance(value, (MetricType, AlertSeverity, AlertStatus)) else str(value)


def _time(field: str, value: Time) -> Union[int, str]:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(round(value.timestamp() * 1000))
    if isinstance(value, date):
        raise ValidationError("must be a datetime, epoch milliseconds or RFC 3339 text, not a date", field)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValidationError(f"must be a datetime, epoch milliseconds or RFC 3339 text, not {type(value).__name__}", field)
    return value


def _hours(value: Union[int, str, None]) -> Optional[str]:
    """``hours`` of alert listings: a positive whole number, ``"all"`` or ``None`` (any time)."""
    return "all" if value is None else str(value)


def _values(values: Any) -> Union[bytes, List[float]]:
    np = sys.modules.get("numpy")
    if np is not None:
        if hasattr(values, "to_numpy"):
            values = values.to_numpy()
        if isinstance(values, np.ndarray):
            if values.dtype.kind not in "fiub":
                raise ValidationError(f"must hold numbers, not {values.dtype}", "values")
            data: bytes = np.ascontiguousarray(values, dtype="<f8").tobytes()
            return data
    return [float(v) for v in values]


def _timestamps(timestamps: Any) -> Union[bytes, List[int]]:
    np = sys.modules.get("numpy")
    if np is not None:
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(timestamps, (pd.Series, pd.Index)):
            if timestamps.dtype.kind == "M" or isinstance(timestamps.dtype, pd.DatetimeTZDtype):
                timestamps = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).tz_convert(None)
            timestamps = np.asarray(timestamps)
        if isinstance(timestamps, np.ndarray):
            if timestamps.dtype.kind == "M":
                data: bytes = timestamps.astype("datetime64[ms]").astype("<i8").tobytes()
                return data
            if timestamps.dtype.kind in "iu":
                data = np.ascontiguousarray(timestamps, dtype="<i8").tobytes()
                return data
            if timestamps.dtype.kind != "O":
                raise ValidationError(
                    f"must be datetime64 or integer epoch milliseconds, not {timestamps.dtype}", "timestamps"
                )
    return [_millis(_time("timestamps", t)) for t in timestamps]


FEATURE_COLUMN = "feature."
"""A prediction's feature as a key of its own (a DataFrame's column): ``feature.<name>``,
gathered into its ``features`` object, as the CLI reads CSV columns."""


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds; anything else as it is."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _add_features(row: Dict[str, Any], pairs: Iterable[Tuple[Any, Any]]) -> None:
    """Adds to the row's ``features`` object, NumPy scalars made plain and missing values
    left out."""
    features = row.setdefault("features", {})
    for name, value in pairs:
        value = _plain(value)
        if not _missing(value):
            features[str(name)] = value


def _rows(noun: str, events: Any) -> List[Dict[str, Any]]:
    """Events as the API's objects: dicts (or a DataFrame's rows) with NumPy scalars made
    plain, missing values (``None``, NaN) left out and times as epoch ms or text. A
    prediction's ``feature.<name>`` keys (and its ``features`` mapping) make its
    ``features`` object, missing values left out there too."""
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(events, pd.DataFrame):
        events = events.to_dict("records")
    if isinstance(events, Mapping):
        raise ValidationError("must be a list of dicts (or a DataFrame), not one dict", noun)
    rows: List[Dict[str, Any]] = []
    for index, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise ValidationError(f"must be a dict, not {type(event).__name__}", f"{noun}[{index}]")
        row: Dict[str, Any] = {}
        for key, value in event.items():
            if isinstance(value, datetime):
                value = _time(f"{noun}[{index}].{key}", value)
            elif isinstance(value, date):
                raise ValidationError("must be a datetime, epoch milliseconds or RFC 3339 text, not a date", f"{noun}[{index}].{key}")
            else:
                value = _plain(value)
            if noun == "predictions" and key == "features" and not _missing(value):
                if not isinstance(value, Mapping):
                    raise ValidationError(f"must be a dict of numbers, not {type(value).__name__}", f"{noun}[{index}].features")
                _add_features(row, value.items())
                continue
            if noun == "predictions" and str(key).startswith(FEATURE_COLUMN):
                _add_features(row, [(str(key)[len(FEATURE_COLUMN) :], value)])
                continue
            if _missing(value):
                continue
            row[str(key)] = value
        rows.append(row)
    return rows


def _shifted(error: ValidationError, noun: str, start: int) -> ValidationError:
    """A batch's error, its index counted in the whole list (``predictions[3]`` of the
    second batch is ``predictions[10003]``)."""
    field = error.field or ""
    prefix = f"{noun}["
    if start and field.startswith(prefix) and "]" in field:
        index, rest = field[len(prefix) :].split("]", 1)
        if index.isdigit():
            return ValidationError(error.message, f"{prefix}{int(index) + start}]{rest}")
    return error


def _millis(value: Union[int, str]) -> int:
    return value if isinstance(value, int) else int(round(parse_time(value).timestamp() * 1000))


class MetricsCollector:
    """Records metrics and reads them back (the seed's ``MetricsCollector``).

    ``MetricsCollector()`` opens ``MODELWATCH_DB`` or the CLI's default database;
    ``MetricsCollector("metrics.db")``, ``MetricsCollector("memory")`` or
    ``MetricsCollector(modelwatch.Client("http://127.0.0.1:7878", token=…))`` choose.

    ``record_metric`` validates at once and returns within microseconds: the sample is
    stored by a background writer within 50 ms, and at once by ``flush()``, by any read
    of this backend, and at exit."""

    def __init__(self, database: Target = None, *, token: Optional[str] = None) -> None:
        self.backend: Backend = connect(database, token=token)

    def record_metric(
        self,
        model_name: str,
        model_version: str,
        metric_type: Union[MetricType, str],
        metric_value: float,
        timestamp: Optional[Time] = None,
        dataset: Optional[str] = None,
    ) -> PerformanceMetric:
        """Records one value (at ``timestamp``, default now)."""
        at = None if timestamp is None else _time("timestamp", timestamp)
        return PerformanceMetric(
            self.backend.record(model_name, model_version, _name(metric_type), metric_value, at, dataset)
        )

    def record_many(
        self,
        data: Any = None,
        *,
        model_name: Optional[str] = None,
        model_version: Optional[str] = None,
        metric_type: Union[MetricType, str, None] = None,
        values: Any = None,
        timestamps: Any = None,
        dataset: Optional[str] = None,
    ) -> int:
        """Records many values at once, stored when it returns; returns how many.

        Either one series — ``values`` (a list, NumPy array or pandas Series) at
        ``timestamps`` (datetimes, ``datetime64``, or integer epoch milliseconds) for
        ``model_name``/``model_version``/``metric_type`` — or a pandas DataFrame ``data``
        with columns ``value`` (or ``metric_value``), ``timestamp`` and, unless given as
        keywords, ``model``/``model_name``, ``version``/``model_version`` and
        ``metric``/``metric_type`` (and optionally ``dataset``)."""
        pd = sys.modules.get("pandas")
        if data is not None and pd is not None and isinstance(data, pd.DataFrame):
            return self._record_frame(data, model_name, model_version, metric_type, dataset)
        if data is not None:
            if values is not None:
                raise ValidationError("give values either as data or as values=, not both", "values")
            values = data
        for field, given in (("model_name", model_name), ("model_version", model_version), ("metric_type", metric_type)):
            if given is None:
                raise ValidationError("is required for one series of values", field)
        if values is None:
            raise ValidationError("is required", "values")
        if timestamps is None:
            raise ValidationError("is required: samples at one timestamp replace each other", "timestamps")
        assert model_name is not None and model_version is not None and metric_type is not None
        count: int = self.backend.record_columns(
            model_name, model_version, _name(metric_type), _values(values), _timestamps(timestamps), dataset
        )
        return count

    def _record_frame(
        self,
        frame: "pandas.DataFrame",
        model_name: Optional[str],
        model_version: Optional[str],
        metric_type: Union[MetricType, str, None],
        dataset: Optional[str],
    ) -> int:
        def column(*names: str) -> Optional[str]:
            return next((n for n in names if n in frame.columns), None)

        value_column = column("value", "metric_value")
        time_column = column("timestamp", "time")
        if value_column is None:
            raise ValidationError("the DataFrame has no value (or metric_value) column", "value")
        if time_column is None:
            raise ValidationError("the DataFrame has no timestamp column", "timestamp")
        keys: List[str] = []
        fixed: Dict[str, Optional[str]] = {
            "model": model_name,
            "version": model_version,
            "metric": None if metric_type is None else _name(metric_type),
            "dataset": dataset,
        }
        names = {"model": ("model", "model_name"), "version": ("version", "model_version"),
                 "metric": ("metric", "metric_type"), "dataset": ("dataset",)}
        for key, candidates in names.items():
            present = column(*candidates)
            if fixed[key] is None and present is not None:
                keys.append(present)
            elif fixed[key] is None and key != "dataset":
                raise ValidationError(f"the DataFrame has no {' or '.join(candidates)} column; pass it as a keyword", candidates[-1])
        total = 0
        groups: Iterable[Any] = frame.groupby(keys, sort=False, dropna=False) if keys else [((), frame)]
        for group_key, group in groups:
            group_values = group_key if isinstance(group_key, tuple) else (group_key,)
            by_column: Dict[str, Any] = dict(zip(keys, group_values))
            part = {
                key: fixed[key] if fixed[key] is not None else next(
                    (by_column[c] for c in names[key] if c in by_column), None
                )
                for key in names
            }
            dataset_name = part["dataset"]
            if dataset_name is not None and not isinstance(dataset_name, str):
                dataset_name = None  # NaN: no dataset
            total += self.backend.record_columns(
                str(part["model"]),
                str(part["version"]),
                _name(str(part["metric"])),
                _values(group[value_column]),
                _timestamps(group[time_column]),
                dataset_name,
            )
        return total

    def flush(self) -> None:
        """Stores what ``record_metric`` queued; returns once it is durable."""
        self.backend.flush()

    def get_performance_history(
        self, model_name: str, model_version: str, hours: float = 24, *, dataset: Optional[str] = None
    ) -> PerformanceHistory:
        """Health, trend and a summary per metric over the last ``hours``, on ``dataset``
        (default: the default dataset; datasets are never mixed)."""
        return PerformanceHistory(self.backend.performance_history(model_name, model_version, float(hours), dataset))

    def history(
        self,
        model_name: str,
        model_version: str,
        metric_type: Union[MetricType, str],
        hours: Optional[float] = 24,
        *,
        start: Optional[Time] = None,
        end: Optional[Time] = None,
        dataset: Optional[str] = None,
    ) -> SeriesHistory:
        """Every point of one series over the last ``hours`` (or from ``start`` to
        ``end``), on ``dataset`` (default: the default dataset); ``.to_pandas()`` gives a
        DataFrame."""
        if start is None and hours is not None:
            if not hours > 0:
                raise ValidationError("must be positive", "hours")
            start = _native.now_ms() - int(hours * 3_600_000)
        return SeriesHistory(
            self.backend.series(
                model_name,
                model_version,
                _name(metric_type),
                None if start is None else _time("start", start),
                None if end is None else _time("end", end),
                dataset,
            )
        )

    # -- predictions and labels (issue 22) ----------------------------------------------

    def log_predictions(self, predictions: Any) -> PredictionsLogged:
        """Logs predictions; modelwatch computes each window's metrics (accuracy, AUC, RMSE…)
        and label coverage from them and their labels, as ordinary metric series.

        ``predictions``: dicts (or a pandas DataFrame's rows) with ``id`` (unique per
        model: its label names it), ``model``, ``version``, ``timestamp`` (a datetime,
        epoch milliseconds or RFC 3339 text), optionally ``dataset``, and ``class`` and/or
        ``score`` for a classification or ``value`` for a regression, and optionally up to
        32 ``features`` (``{"age": 41, "amount": 12.5}``, or a DataFrame's
        ``feature.age``/``feature.amount`` columns, NaN leaving one out) whose drift from
        the reference window is written as ``drift_psi_feature_<name>``,
        ``drift_ks_feature_<name>`` and ``drift_js_feature_<name>``. Every prediction is
        validated before any is stored, per 10,000; a bad one raises ``ValidationError``
        naming it (``predictions[3].score``). A prediction whose id the model already has
        is counted as a duplicate."""
        return PredictionsLogged(self._log("predictions", predictions, self.backend.log_predictions))

    def log_labels(self, labels: Any) -> LabelsLogged:
        """Logs labels, in any order and at any time after (or before) their predictions:
        dicts (or a DataFrame's rows) with ``id``, ``model``, ``label`` (0/1 for a
        classification, the true value for a regression) and optionally ``timestamp``.
        The windows of the predictions they label are recomputed."""
        return LabelsLogged(self._log("labels", labels, self.backend.log_labels))

    def prediction_config(self, model_name: str) -> PredictionConfig:
        """How ``model_name``'s predictions become metrics (the defaults, with
        ``configured`` false, for a model without a configuration)."""
        return PredictionConfig(self.backend.prediction_config(model_name))

    def set_prediction_config(
        self,
        model_name: str,
        *,
        window: Optional[str] = None,
        task: Optional[str] = None,
        threshold: Optional[float] = None,
        min_coverage: Optional[float] = None,
        max_label_delay: Optional[str] = None,
    ) -> PredictionConfig:
        """Sets what is given of ``model_name``'s prediction configuration: the tumbling
        ``window`` (``"1h"``, ``"1d"``…), the ``task`` (``"classification"`` or
        ``"regression"``, needed the first time), the score ``threshold``, the
        ``min_coverage`` a window needs before it is judged and the ``max_label_delay``
        (``"7d"``) after which it is judged whatever its coverage; the rest keep their
        value."""
        given = (
            ("window", window),
            ("task", task),
            ("threshold", threshold),
            ("min_coverage", min_coverage),
            ("max_label_delay", max_label_delay),
        )
        changes = {key: value for key, value in given if value is not None}
        return PredictionConfig(self.backend.set_prediction_config(model_name, changes))

    def _log(self, noun: str, events: Any, send: Callable[[List[Dict[str, Any]]], Dict[str, Any]]) -> Dict[str, Any]:
        rows = _rows(noun, events)
        if not rows:
            raise ValidationError("must not be empty", noun)
        total: Dict[str, Any] = {}
        for start in range(0, len(rows), MAX_EVENTS):
            try:
                logged = send(rows[start : start + MAX_EVENTS])
            except ValidationError as error:
                raise _shifted(error, noun, start) from None
            for key, count in logged.items():
                total[key] = total.get(key, 0) + count
        return total

    def define_metric(
        self, metric: str, *, lower_is_better: bool = False, min: Optional[float] = None, max: Optional[float] = None
    ) -> MetricDefinition:
        """Declares a custom metric's direction and valid range (embedded mode)."""
        return MetricDefinition(self.backend.define_metric(metric, lower_is_better, min, max))

    def close(self) -> None:
        """Stores what is queued and closes the backend."""
        self.backend.close()

    def __enter__(self) -> "MetricsCollector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


class DegradationDetector:
    """Degradation checks over a collector's backend (the seed's ``DegradationDetector``)."""

    def __init__(self, collector: MetricsCollector) -> None:
        self.collector = collector

    @property
    def backend(self) -> Backend:
        return self.collector.backend

    def check_degradation(
        self,
        model_name: str,
        model_version: str,
        metric_type: Union[MetricType, str],
        baseline_window_hours: int = 24,
        comparison_window_hours: Optional[int] = None,
        *,
        dataset: Optional[str] = None,
    ) -> DegradationResult:
        """The latest value (or the last ``comparison_window_hours``' mean) against the
        ``baseline_window_hours`` before it, with a significance test, on ``dataset``
        (default: the default dataset)."""
        results = self.backend.check_degradation(
            model_name, model_version, _name(metric_type), baseline_window_hours, comparison_window_hours, dataset
        )
        return DegradationResult(results[0])

    def check_all_metrics(
        self,
        model_name: str,
        model_version: str,
        baseline_window_hours: int = 24,
        comparison_window_hours: Optional[int] = None,
        *,
        dataset: Optional[str] = None,
    ) -> List[DegradationResult]:
        """``check_degradation`` for every metric the version has, on ``dataset``."""
        results = self.backend.check_degradation(
            model_name, model_version, None, baseline_window_hours, comparison_window_hours, dataset
        )
        return [DegradationResult(result) for result in results]


@dataclass
class AlertConfig:
    """The global alert settings (the configuration file's ``[alerts]``)."""

    enable_alerts: bool = True
    max_alerts_per_hour: int = 10
    max_alerts_per_model_per_hour: int = 5
    min_severity_to_notify: Union[AlertSeverity, str] = AlertSeverity.MEDIUM

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["min_severity_to_notify"] = _name(self.min_severity_to_notify)
        return data


class AlertService:
    """Rules, evaluation and the alert lifecycle (the seed's ``AlertService``).

    ``config`` applies to evaluations in embedded mode; a server evaluates with its own
    ``[alerts]`` settings, so a remote service refuses one."""

    def __init__(self, detector: DegradationDetector, config: Optional[AlertConfig] = None) -> None:
        self.detector = detector
        if config is not None and isinstance(detector.backend, Client):
            raise ValidationError(
                "a server evaluates with its own [alerts] settings; set them in its configuration file", "config"
            )
        self.config = config

    @property
    def backend(self) -> Backend:
        return self.detector.backend

    def _rule(self, fields: Dict[str, Any]) -> Rule:
        spec = {key: value for key, value in fields.items() if value is not None}
        for key in ("metric_type", "severity"):
            if key in spec:
                spec[key] = _name(spec[key])
        return Rule(self.backend.create_rule(spec))

    def create_rule(
        self,
        rule_name: str,
        model_name: str,
        metric_type: Union[MetricType, str],
        threshold_value: float,
        comparison_operator: str,
        severity: Union[AlertSeverity, str] = AlertSeverity.MEDIUM,
        model_version: Optional[str] = None,
        cooldown_minutes: Optional[int] = None,
        notify_channels: Optional[Sequence[str]] = None,
        enabled: bool = True,
        dataset: Optional[str] = None,
        **more: Any,
    ) -> Rule:
        """A threshold rule: fires when the metric is ``comparison_operator`` (``gt``,
        ``lt``, ``gte``, ``lte``, ``eq``) ``threshold_value``. ``dataset`` is the dataset
        it watches (default: the default dataset) or ``"*"`` for each dataset separately.
        ``more`` takes the other rule fields (``for_evaluations``,
        ``clear_after_evaluations``, ``auto_resolve``, ``clear_threshold``, ``tolerance``)."""
        return self._rule(
            dict(
                rule_name=rule_name,
                model_name=model_name,
                metric_type=metric_type,
                threshold_value=threshold_value,
                comparison_operator=comparison_operator,
                severity=severity,
                model_version=model_version,
                cooldown_minutes=cooldown_minutes,
                notify_channels=None if notify_channels is None else list(notify_channels),
                enabled=enabled,
                dataset=dataset,
                **more,
            )
        )

    def create_degradation_rule(
        self,
        rule_name: str,
        model_name: str,
        metric_type: Union[MetricType, str],
        max_degradation_percentage: float,
        severity: Union[AlertSeverity, str] = AlertSeverity.MEDIUM,
        baseline_window_hours: Optional[int] = None,
        model_version: Optional[str] = None,
        cooldown_minutes: Optional[int] = None,
        notify_channels: Optional[Sequence[str]] = None,
        enabled: bool = True,
        dataset: Optional[str] = None,
        **more: Any,
    ) -> Rule:
        """A degradation rule: fires when the metric is significantly worse than its
        baseline by more than ``max_degradation_percentage`` percent; ``dataset`` as for
        ``create_rule``."""
        return self._rule(
            dict(
                rule_name=rule_name,
                model_name=model_name,
                metric_type=metric_type,
                max_degradation_percentage=max_degradation_percentage,
                severity=severity,
                baseline_window_hours=baseline_window_hours,
                model_version=model_version,
                cooldown_minutes=cooldown_minutes,
                notify_channels=None if notify_channels is None else list(notify_channels),
                enabled=enabled,
                dataset=dataset,
                **more,
            )
        )

    def list_rules(self, model_name: Optional[str] = None) -> List[Rule]:
        return [Rule(rule) for rule in self.backend.list_rules(model_name)]

    def evaluate_model(self, model_name: str, model_version: str) -> List[Alert]:
        """Evaluates the version's enabled rules now; returns the alerts this created."""
        if isinstance(self.backend, Client):
            report = self.backend.evaluate_model(model_name, model_version)
        else:
            config = None if self.config is None else self.config.to_dict()
            report = self.backend.evaluate_model(model_name, model_version, config)
        return [Alert(alert) for alert in report["alerts_created"]]

    def get_alert(self, alert_id: str) -> Alert:
        return Alert(self.backend.get_alert(alert_id))

    def acknowledge_alert(self, alert_id: str, acknowledged_by: str) -> Alert:
        return Alert(self.backend.acknowledge(alert_id, acknowledged_by))

    def resolve_alert(self, alert_id: str, resolved_by: str, resolution_notes: Optional[str] = None) -> Alert:
        return Alert(self.backend.resolve(alert_id, resolved_by, resolution_notes))

    def list_alerts(
        self,
        model_name: Optional[str] = None,
        status: Union[AlertStatus, str, None] = None,
        hours: Optional[int] = 24,
        *,
        model_version: Optional[str] = None,
        severity: Union[AlertSeverity, str, None] = None,
    ) -> List[Alert]:
        """Alerts alive in the last ``hours`` (``None``: any time), newest first;
        ``status`` one ``AlertStatus`` or ``"open"`` (not resolved yet)."""
        alerts = self.backend.list_alerts(
            model_name,
            model_version,
            None if status is None else _name(status),
            None if severity is None else _name(severity),
            _hours(hours),
        )
        return [Alert(alert) for alert in alerts]

    def get_active_alerts(self, model_name: Optional[str] = None) -> List[Alert]:
        """Every active alert (not acknowledged or resolved), of any age, newest first."""
        return self.list_alerts(model_name, AlertStatus.ACTIVE, None)

    def get_alert_summary(self, model_name: Optional[str] = None, hours: Optional[int] = 24) -> AlertSummary:
        """Counts by status and severity of the alerts alive in the last ``hours``."""
        return AlertSummary(self.backend.alert_summary(model_name, _hours(hours)))
