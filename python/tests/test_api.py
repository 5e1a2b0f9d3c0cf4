"""The package's own surface: typed records against the engine's JSON (no drift),
batches from lists, NumPy and pandas, history to pandas, errors naming the field."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Set

import numpy as np
import pandas as pd
import pytest

import modelwatch
from modelwatch import MetricsCollector, MetricType, _native
from modelwatch._wire import Record

from conftest import Server

NOW_MS = (modelwatch._native.now_ms() // 1000) * 1000


def records(collector: MetricsCollector) -> Dict[type[Record], List[Dict[str, Any]]]:
    """One JSON object of each record type, straight from the engine."""
    backend = collector.backend
    ms = np.arange(NOW_MS - 3_600_000 * 30, NOW_MS, 60_000, dtype=np.int64)
    collector.record_many(model_name="wire", model_version="v1", metric_type=MetricType.ACCURACY,
                          values=0.9 + 0.01 * np.sin(np.arange(len(ms))), timestamps=ms)
    sample = backend.record("wire", "v1", "accuracy", 0.5, None, "holdout")
    threshold = backend.create_rule({"rule_name": "low", "model_name": "wire", "metric_type": "accuracy",
                                     "threshold_value": 0.95, "comparison_operator": "lt", "for_evaluations": 1})
    degradation = backend.create_rule({"rule_name": "drop", "model_name": "wire", "metric_type": "accuracy",
                                       "max_degradation_percentage": 5, "clear_percentage": 1,
                                       "comparison": "window", "comparison_hours": 2, "seasonal": "daily",
                                       "alpha": 0.01, "enabled": False})
    change_point = backend.create_rule({"rule_name": "shift", "model_name": "wire", "metric_type": "accuracy",
                                        "condition_type": "change_point", "min_shift_sd": 1.5,
                                        "false_alarm_interval_samples": 1000, "enabled": False})
    no_data = backend.create_rule({"rule_name": "silent", "model_name": "wire", "metric_type": "accuracy",
                                   "condition_type": "no_data", "no_data_minutes": 30, "no_data_intervals": 5,
                                   "enabled": False})
    alerts = backend.evaluate_model("wire", "v1")["alerts_created"]
    acknowledged = backend.resolve(alerts[0]["id"], "ana", "retrained")
    history = backend.performance_history("wire", "v1", 48)
    series = backend.series("wire", "v1", "accuracy", NOW_MS - 3_600_000, None)
    split = backend.series("wire", "v1", "accuracy", NOW_MS - 3_600_000, None, "holdout")
    database = backend
    assert isinstance(database, modelwatch.Database), "custom metrics are declared in embedded mode only"
    definition = database.define_metric("queue_ms", True, 0.0, None)
    config = backend.set_prediction_config("wire", {"window": "1h", "task": "classification", "threshold": 0.5})
    event = {"model": "wire", "version": "v1", "timestamp": NOW_MS - 3_600_000}
    predictions = backend.log_predictions([{**event, "id": "p1", "score": 0.9}, {**event, "id": "p2", "score": 0.2}])
    labels = backend.log_labels([{"id": "p1", "model": "wire", "label": 1}, {"id": "p9", "model": "wire", "label": 0}])
    return {
        modelwatch.PerformanceMetric: [sample, *_native.validate_columns("wire", "v1", "latency", [1.5], [NOW_MS])],
        modelwatch.MetricDefinition: [definition, *database.custom_metrics()],
        modelwatch.PredictionConfig: [config, backend.prediction_config("other")],
        modelwatch.PredictionsLogged: [predictions],
        modelwatch.LabelsLogged: [labels],
        modelwatch.DegradationResult: backend.check_degradation("wire", "v1", None, None, 1),
        modelwatch.PerformanceHistory: [history],
        modelwatch.MetricHistory: history["metric_summaries"],
        modelwatch.Rule: [threshold, degradation, change_point, no_data],
        modelwatch.Alert: [alerts[0], acknowledged],
        modelwatch.AlertSummary: [backend.alert_summary("wire", "all"), backend.alert_summary(None, "24")],
        modelwatch.SeriesHistory: [series, split],
        modelwatch.Point: series["points"][:1] + split["points"][:1],
    }


def test_records_declare_exactly_the_fields_the_engine_sends(tmp_path: Path) -> None:
    collector = MetricsCollector(str(tmp_path / "wire.db"))
    seen: Dict[type[Record], set[str]] = {}
    for kind, objects in records(collector).items():
        for data in objects:
            seen.setdefault(kind, set()).update(data)
            record: Record = kind(data)
            assert record.to_dict() == data
            for name in kind.field_names():
                getattr(record, "from_" if name == "from" else name)
    for kind, names in seen.items():
        declared = set(kind.field_names())
        # Fields the engine leaves out when empty (skip_serializing_if) are declared too.
        assert names <= declared, f"{kind.__name__} lacks {names - declared}: declare them in _wire.py"
        assert declared - names <= {
            "dataset", "hold_reason", "acknowledged_by", "acknowledged_at", "model", "tolerance",
            "clear_threshold", "comparison_operator", "threshold_value", "max_degradation_percentage",
            "baseline_window_hours", "clear_percentage", "resolved_by", "resolved_at", "resolution_notes",
            # Only alerts on metrics computed from predictions carry the coverage decided on.
            "label_coverage",
            # A rule's condition carries one minimum shift and one false-alarm interval.
            "min_shift_percentage", "false_alarm_interval_hours",
        }, f"{kind.__name__} declares fields the engine never sends: {declared - names}"


#: The OpenAPI schema (crates/http/src/wire) whose JSON each record wraps: every record
#: the package returns.
OPENAPI_SCHEMAS: Dict[type[Record], str] = {
    modelwatch.PerformanceMetric: "SampleInput",
    modelwatch.SeriesHistory: "SeriesResponse",
    modelwatch.Point: "PointOut",
    modelwatch.MetricDefinition: "MetricDefinition",
    modelwatch.DegradationResult: "DegradationResult",
    modelwatch.MetricHistory: "MetricHistory",
    modelwatch.PerformanceHistory: "PerformanceHistory",
    modelwatch.Rule: "Rule",
    modelwatch.Alert: "Alert",
    modelwatch.AlertSummary: "AlertSummary",
    modelwatch.PredictionsLogged: "PredictionsLogged",
    modelwatch.LabelsLogged: "LabelsLogged",
    modelwatch.PredictionConfig: "PredictionConfig",
}


def schema_fields(document: Dict[str, Any], schema: Dict[str, Any]) -> Set[str]:
    """Every property a schema can have: its own, its references' and its variants'."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return schema_fields(document, document["components"]["schemas"][name])
    fields = set(schema.get("properties", {}))
    for key in ("allOf", "oneOf", "anyOf"):
        for member in schema.get(key, []):
            fields |= schema_fields(document, member)
    return fields


def test_records_declare_exactly_the_fields_of_the_api_schemas(server: Server) -> None:
    """The package reads the API's wire types: a field renamed, added or removed in the
    OpenAPI document (crates/http/src/wire) fails here until _wire.py follows."""
    with urllib.request.urlopen(server.url + "/api/openapi.json", timeout=10) as response:
        document: Dict[str, Any] = json.load(response)
    for kind, name in OPENAPI_SCHEMAS.items():
        documented = schema_fields(document, document["components"]["schemas"][name])
        declared = set(kind.field_names())
        assert declared == documented, (
            f"{kind.__name__}: declared but not in the API's {name}: {sorted(declared - documented)}; "
            f"in the API's {name} but not declared: {sorted(documented - declared)}"
        )


def schema_errors(document: Dict[str, Any], schema: Dict[str, Any], value: Any, path: str, closed: bool = True) -> List[str]:
    """Where `value` breaks `schema` (OpenAPI 3.1: JSON Schema's types, `null` among them):
    a wrong type, a value outside an enum or pattern, a required field missing, or (when
    `closed`: not a part of a composed schema) a field the schema does not have."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return schema_errors(document, document["components"]["schemas"][name], value, path, closed)
    errors: List[str] = []
    if closed and isinstance(value, dict):
        known = schema_fields(document, schema)
        if known or "properties" in schema:
            errors += [f"{path}: has {name}, which the schema does not" for name in value if name not in known]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            variants = [schema_errors(document, member, value, path, False) for member in schema[key]]
            matching = sum(1 for found in variants if not found)
            if matching == 0 or (key == "oneOf" and matching > 1):
                errors.append(f"{path}: matches {matching} of its {key} variants: {variants}")
    for member in schema.get("allOf", []):
        errors += schema_errors(document, member, value, path, False)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        actual = {
            type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string",
            list: "array", dict: "object",
        }[type(value)]
        if actual not in kinds and not (actual == "integer" and "number" in kinds):
            return errors + [f"{path}: {actual} where the schema has {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, str) and schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            errors.append(f"{path}: {value!r} is not a date-time")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(document, schema["items"], item, f"{path}[{index}]")
    if isinstance(value, dict) and "properties" in schema:
        errors += [f"{path}: lacks the required {name}" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name in schema["properties"]:
                errors += schema_errors(document, schema["properties"][name], item, f"{path}.{name}")
    return errors


def test_every_record_the_engine_sends_is_valid_by_its_api_schema(server: Server, tmp_path: Path) -> None:
    """Not only the field names: each object the package returns (embedded mode, so the
    extension's own serialisation) has the types, enums, patterns and required fields of
    the OpenAPI schema of the wire type it is."""
    with urllib.request.urlopen(server.url + "/api/openapi.json", timeout=10) as response:
        document: Dict[str, Any] = json.load(response)
    sent = records(MetricsCollector(str(tmp_path / "schemas.db")))
    assert set(sent) == set(OPENAPI_SCHEMAS), "every record the package returns has its schema here"
    for kind, objects in sent.items():
        schema = {"$ref": f"#/components/schemas/{OPENAPI_SCHEMAS[kind]}"}
        for data in objects:
            assert schema_errors(document, schema, data, kind.__name__) == [], data


def test_typed_attributes_and_seed_names() -> None:
    collector = MetricsCollector("memory")
    sample = collector.record_metric(model_name="typed", model_version="v1", metric_type=MetricType.LATENCY,
                                     metric_value=12.5, timestamp=datetime(2024, 5, 1, 12, tzinfo=timezone.utc))
    assert sample.metric is MetricType.LATENCY and sample.metric_type is MetricType.LATENCY
    assert sample.timestamp == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert sample.model_name == "typed" and sample.metric_value == 12.5
    assert sample.to_dict()["timestamp"] == "2024-05-01T12:00:00.000Z"
    assert f"{modelwatch.AlertSeverity.HIGH}" == "high" and str(modelwatch.AlertStatus.ACTIVE) == "active"
    custom = collector.record_metric(model_name="typed", model_version="v1", metric_type="queue_ms", metric_value=3)
    assert isinstance(custom.metric_type, modelwatch.CustomMetric) and custom.metric_type.value == "queue_ms"


@pytest.mark.parametrize(
    "call, field",
    [
        (dict(model_name="bad name", model_version="v1", metric_type="accuracy", metric_value=0.5), "model"),
        (dict(model_name="m", model_version="", metric_type="accuracy", metric_value=0.5), "version"),
        (dict(model_name="m", model_version="v1", metric_type="accuracy", metric_value=1.5), "value"),
        (dict(model_name="m", model_version="v1", metric_type="latency", metric_value=float("nan")), "value"),
        (dict(model_name="m", model_version="v1", metric_type="bad metric", metric_value=1.0), "metric"),
        (dict(model_name="m", model_version="v1", metric_type="accuracy", metric_value=0.5, timestamp="yesterday"),
         "timestamp"),
    ],
)
def test_bad_input_raises_validation_error_naming_the_field(call: Dict[str, Any], field: str) -> None:
    collector = MetricsCollector("memory")
    with pytest.raises(modelwatch.ValidationError) as raised:
        collector.record_metric(**call)
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)


def test_errors_of_the_alert_lifecycle() -> None:
    service = modelwatch.AlertService(modelwatch.DegradationDetector(MetricsCollector("memory")))
    with pytest.raises(modelwatch.NotFoundError):
        service.acknowledge_alert("alert_0000abcd", "ana")
    with pytest.raises(modelwatch.ValidationError) as raised:
        service.create_rule(rule_name="r", model_name="m", metric_type="accuracy", threshold_value=0.9,
                            comparison_operator="below")
    assert raised.value.field == "comparison_operator"
    with pytest.raises(modelwatch.ValidationError) as raised:
        service.create_rule(rule_name="r", model_name="m", metric_type="accuracy", threshold_value=0.9,
                            comparison_operator="lt", severity="urgent")
    assert raised.value.field == "severity"


def test_record_many_from_lists_numpy_and_pandas(tmp_path: Path) -> None:
    collector = MetricsCollector(str(tmp_path / "many.db"))
    start = datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert collector.record_many([0.9, 0.91], model_name="m", model_version="v1", metric_type=MetricType.ACCURACY,
                                 timestamps=[start, start + timedelta(minutes=1)]) == 2
    ms = np.arange(10, dtype=np.int64) * 1000 + int(start.timestamp() * 1000) + 120_000
    assert collector.record_many(model_name="m", model_version="v1", metric_type="accuracy",
                                 values=np.linspace(0.8, 0.9, 10), timestamps=ms) == 10
    frame = pd.DataFrame({
        "model_name": ["m", "m", "other"],
        "model_version": ["v1", "v1", "v7"],
        "metric_type": ["latency", "latency", "rmse"],
        "metric_value": [40.0, 41.0, 0.3],
        "timestamp": pd.to_datetime(["2024-05-01T01:00:00Z", "2024-05-01T01:01:00Z", "2024-05-01T01:00:00Z"]),
    })
    assert collector.record_many(frame) == 3
    history = collector.history("m", "v1", MetricType.ACCURACY, start=start)
    assert history.count == 12
    df = history.to_pandas()
    assert list(df.columns) == ["value", "dataset"] and len(df) == 12
    assert df.index[0] == pd.Timestamp("2024-05-01T00:00:00Z")
    latency = collector.history("m", "v1", "latency", start=start).to_pandas()
    assert latency["value"].tolist() == [40.0, 41.0]
    with pytest.raises(modelwatch.ValidationError) as raised:
        collector.record_many(model_name="m", model_version="v1", metric_type="accuracy",
                              values=np.array([0.5, 2.0]), timestamps=ms[:2])
    assert raised.value.field == "values[1]"
    with pytest.raises(modelwatch.ValidationError) as raised:
        collector.record_many([0.5], model_name="m", model_version="v1", metric_type="accuracy")
    assert raised.value.field == "timestamps"


def test_a_custom_metric_out_of_its_declared_range_is_reported_at_flush(tmp_path: Path) -> None:
    collector = MetricsCollector(str(tmp_path / "custom.db"))
    collector.define_metric("queue_ms", lower_is_better=True, min=0)
    collector.record_metric(model_name="m", model_version="v1", metric_type="queue_ms", metric_value=-1)
    collector.record_metric(model_name="m", model_version="v1", metric_type="queue_ms", metric_value=5,
                            timestamp=NOW_MS + 1)
    with pytest.raises(modelwatch.ValidationError) as raised:
        collector.flush()
    assert raised.value.field == "value" and "queue_ms" in str(raised.value)
    assert [p.value for p in collector.history("m", "v1", "queue_ms").points] == [5.0]


def test_store_work_releases_the_gil(tmp_path: Path) -> None:
    import threading
    import time

    database = modelwatch.Database(str(tmp_path / "gil.db"))
    ms = (np.arange(1_000_000, dtype=np.int64) * 1000 + NOW_MS - 1_000_000_000).tobytes()
    values = np.full(1_000_000, 0.5).tobytes()
    span: List[float] = []
    seen: List[float] = []
    done = threading.Event()

    def write() -> None:
        span.append(time.perf_counter())
        database.record_columns("gil", "v1", "accuracy", values, ms)
        span.append(time.perf_counter())
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    ticks = 0
    while not done.is_set():
        ticks += 1
        if ticks % 1000 == 0:
            seen.append(time.perf_counter())
    writer.join()
    start, end = span
    assert end - start > 0.05, "the write was too short to tell"
    # Held, the GIL would stop this thread for the whole call (a switch interval aside).
    inside = [t for t in seen if start + 0.01 < t < end - 0.01]
    assert inside, (start, end, seen[:3], seen[-3:])
    database.close()


def test_embedded_mode_on_postgresql() -> None:
    """A PostgreSQL URL opens as the CLI opens it (a fresh database, dropped after)."""
    import subprocess
    import uuid

    server = os.environ.get("MODELWATCH_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
    name = f"mw_python_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", server, "-qc", f"CREATE DATABASE {name}"], check=True)
    try:
        location = server.rsplit("/", 1)[0] + "/" + name
        collector = MetricsCollector(modelwatch.Database(location))
        collector.record_many(model_name="pg", model_version="v1", metric_type=MetricType.RMSE,
                              values=[1.0, 1.5], timestamps=[NOW_MS - 60_000, NOW_MS])
        collector.record_metric(model_name="pg", model_version="v1", metric_type=MetricType.RMSE,
                                metric_value=2.0, timestamp=NOW_MS + 1)
        assert [p.value for p in collector.history("pg", "v1", MetricType.RMSE).points] == [1.0, 1.5, 2.0]
        collector.close()
    finally:
        subprocess.run(["psql", server, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True)


def test_an_embedded_database_keeps_the_alerting_state_apart_when_asked(tmp_path: Path) -> None:
    samples, alerts = tmp_path / "samples.db", tmp_path / "alerts.db"
    split = modelwatch.Database(str(samples), alerts_location=str(alerts))
    assert (split.location, split.alerts_location) == (str(samples), str(alerts))
    split.record("m", "v1", "accuracy", 0.5, NOW_MS)
    split.create_rule({"name": "low", "model": "m", "metric": "accuracy", "threshold_value": 0.9,
                       "comparison_operator": "lt"})
    split.close()
    # Each file holds only its part: the rule in one, the sample in the other.
    only_samples = modelwatch.Database(str(samples))
    assert only_samples.alerts_location is None
    assert only_samples.list_rules() == []
    assert [p["value"] for p in only_samples.series("m", "v1", "accuracy", NOW_MS - 1, NOW_MS + 1)["points"]] == [0.5]
    only_samples.close()
    only_alerts = modelwatch.Database(str(alerts))
    assert [rule["name"] for rule in only_alerts.list_rules()] == ["low"]
    with pytest.raises(modelwatch.NotFoundError):
        only_alerts.series("m", "v1", "accuracy", NOW_MS - 1, NOW_MS + 1)
    only_alerts.close()
