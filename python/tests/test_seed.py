"""The seed's Python examples (model-performance-dashboard.md), imports adjusted, run in
embedded and in remote mode against one database: each mode gets its own model names
(a suffix) so their writes do not meet, and both must print the same thing. Then each
mode reads what the other wrote and must get the same objects."""

from __future__ import annotations

import math
import re
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest

import modelwatch
from modelwatch import AlertConfig, AlertService, DegradationDetector, MetricsCollector
from modelwatch.models.alert_models import AlertSeverity, AlertStatus
from modelwatch.models.metrics_models import MetricType

HOUR_MS = 3_600_000
NOW_MS = (modelwatch._native.now_ms() // 60_000) * 60_000 - 60_000


def week_of(collector: MetricsCollector, model: str, version: str, metric: MetricType, level: float,
            last_hours: float = 0.0, drop: float = 0.0) -> None:
    """A week of samples every 10 minutes around `level`, the last `last_hours` lower by `drop`."""
    times = np.arange(NOW_MS - 7 * 24 * HOUR_MS, NOW_MS + 1, 600_000, dtype=np.int64)
    noise = np.sin(np.arange(len(times)) * 1.7) * 0.004
    values = level + noise
    values[times > NOW_MS - last_hours * HOUR_MS] -= drop
    collector.record_many(model_name=model, model_version=version, metric_type=metric,
                          values=values, timestamps=times)


def quick_start(collector: MetricsCollector, detector: DegradationDetector, alert_service: AlertService, s: str) -> None:
    # Record metrics
    collector.record_metric(
        model_name="fraud_detector" + s,
        model_version="v2.1",
        metric_type=MetricType.PRECISION,
        metric_value=0.94
    )

    # Check for degradation
    result = detector.check_degradation(
        model_name="fraud_detector" + s,
        model_version="v2.1",
        metric_type=MetricType.PRECISION
    )

    if result.is_degraded:
        print(f"⚠️ Performance degraded by {result.percentage_change:.1f}%")
        print(f"Severity: {result.severity}")
        print(f"Recommendation: {result.recommendation}")

    # Create alert rule
    rule = alert_service.create_degradation_rule(
        rule_name="Precision Drop Alert",
        model_name="fraud_detector" + s,
        metric_type=MetricType.PRECISION,
        max_degradation_percentage=5.0,
        severity=AlertSeverity.HIGH
    )

    # Evaluate model and trigger alerts
    alerts = alert_service.evaluate_model("fraud_detector" + s, "v2.1")

    for alert in alerts:
        print(f"🚨 {alert.severity.value}: {alert.message}")
    print(result.status, rule.condition_type, len(alerts))


def degradation(collector: MetricsCollector, detector: DegradationDetector, alert_service: AlertService, s: str) -> None:
    week_of(collector, "classifier" + s, "v1.0", MetricType.ACCURACY, 0.92, last_hours=1, drop=0.1)
    # Check if accuracy has degraded
    result = detector.check_degradation(
        model_name="classifier" + s,
        model_version="v1.0",
        metric_type=MetricType.ACCURACY,
        baseline_window_hours=168,  # 1 week baseline
        comparison_window_hours=1    # Compare last hour
    )

    print(f"Current: {result.current_value:.4f}")
    print(f"Baseline: {result.baseline_value:.4f}")
    print(f"Change: {result.percentage_change:+.1f}%")
    print(f"Degraded: {result.is_degraded}")
    print(f"Severity: {result.severity}")


def rules(collector: MetricsCollector, detector: DegradationDetector, alert_service: AlertService, s: str) -> None:
    # Alert when accuracy falls below 0.90
    rule = alert_service.create_rule(
        rule_name="Low Accuracy",
        model_name="my_model" + s,
        metric_type=MetricType.ACCURACY,
        threshold_value=0.90,
        comparison_operator="lt",  # less than
        severity=AlertSeverity.HIGH
    )
    print(rule.name, rule.metric_type.value, rule.comparison_operator, rule.threshold_value, rule.severity)
    # Alert when precision degrades >5%
    rule = alert_service.create_degradation_rule(
        rule_name="Precision Drop",
        model_name="my_model" + s,
        metric_type=MetricType.PRECISION,
        max_degradation_percentage=5.0,
        severity=AlertSeverity.HIGH,
        baseline_window_hours=24
    )
    print(rule.name, rule.max_degradation_percentage, rule.baseline_window_hours, rule.severity)
    rule = alert_service.create_rule(
        rule_name="Accuracy Alert",
        model_name="my_model" + s,
        metric_type=MetricType.ACCURACY,
        threshold_value=0.90,
        comparison_operator="lt",
        severity=AlertSeverity.HIGH,
        cooldown_minutes=120  # 2 hours between alerts
    )
    print(rule.name, rule.cooldown_minutes)


def alert_management(collector: MetricsCollector, detector: DegradationDetector, alert_service: AlertService, s: str) -> None:
    alert_service.create_rule(rule_name="Low Accuracy", model_name="managed" + s, metric_type=MetricType.ACCURACY,
                              threshold_value=0.90, comparison_operator="lt", severity=AlertSeverity.CRITICAL,
                              for_evaluations=1)
    collector.record_metric(model_name="managed" + s, model_version="v1", metric_type=MetricType.ACCURACY,
                            metric_value=0.85)
    fired = alert_service.evaluate_model("managed" + s, "v1")
    print(f"fired: {[(a.severity.value, a.message) for a in fired]}")

    # List active alerts
    alerts = alert_service.list_alerts(
        model_name="managed" + s,
        status=AlertStatus.ACTIVE,
        hours=24
    )
    alert_id = alerts[0].alert_id
    # Acknowledge alert
    alert_service.acknowledge_alert(
        alert_id=alert_id,
        acknowledged_by="john@example.com"
    )

    # Resolve alert
    resolved = alert_service.resolve_alert(
        alert_id=alert_id,
        resolved_by="john@example.com",
        resolution_notes="Fixed data pipeline issue"
    )
    print(resolved.status, resolved.acknowledged_by, resolved.resolution_notes)

    # Get alert summary
    summary = alert_service.get_alert_summary(
        model_name="managed" + s,
        hours=24
    )

    print(f"Active: {summary.active_count}")
    print(f"Critical: {summary.critical_count}")
    print(f"High: {summary.high_count}")
    print(f"Resolved: {summary.resolved_count}")
    print(f"Active alerts now: {len(alert_service.get_active_alerts('managed' + s))}")


def performance_history(collector: MetricsCollector, detector: DegradationDetector, alert_service: AlertService, s: str) -> None:
    week_of(collector, "history" + s, "v1.0", MetricType.ACCURACY, 0.90)
    week_of(collector, "history" + s, "v1.0", MetricType.LATENCY, 40.0)
    history = collector.get_performance_history(
        model_name="history" + s,
        model_version="v1.0",
        hours=168  # 1 week
    )

    print(f"Overall Health: {history.overall_health}")
    print(f"Health Trend: {history.health_trend}")
    print(f"Snapshots: {history.total_snapshots}")

    for summary in history.metric_summaries:
        print(f"\n{summary.metric_type.value}:")
        print(f"  Current: {summary.current_value:.4f}")
        print(f"  Mean: {summary.mean:.4f}")
        print(f"  Trend: {summary.trend}")
        print(f"  Change: {summary.change_percentage:+.1f}%")


def scheduled(collector: MetricsCollector, detector: DegradationDetector, alert_service: AlertService, s: str) -> None:
    week_of(collector, "recommender" + s, "v3.0", MetricType.RECALL, 0.80, last_hours=1, drop=0.2)
    week_of(collector, "classifier" + s, "v1.0", MetricType.ACCURACY, 0.92)
    alert_service.create_degradation_rule(rule_name="Recall drop", model_name="recommender" + s,
                                          metric_type=MetricType.RECALL, max_degradation_percentage=5.0,
                                          for_evaluations=1)

    def daily_model_check() -> None:
        """Daily health check for all production models"""
        models = [
            ("recommender" + s, "v3.0"),
            ("classifier" + s, "v1.0"),
        ]

        for model_name, version in models:
            # Check degradation
            results = detector.check_all_metrics(model_name, version)

            degraded = [r for r in results if r.is_degraded]
            if degraded:
                print(f"⚠️ {model_name.removesuffix(s)} v{version}: {len(degraded)} degraded metrics")

            # Evaluate alerts
            alerts = alert_service.evaluate_model(model_name, version)
            if alerts:
                print(f"🚨 {model_name.removesuffix(s)} v{version}: {len(alerts)} new alerts")

    daily_model_check()


EXAMPLES: List[Callable[[MetricsCollector, DegradationDetector, AlertService, str], None]] = [
    quick_start, degradation, rules, alert_management, performance_history, scheduled,
]


def _services(collector: MetricsCollector) -> Tuple[MetricsCollector, DegradationDetector, AlertService]:
    detector = DegradationDetector(collector)
    return collector, detector, AlertService(detector)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.__name__)
def test_seed_example_prints_the_same_in_both_modes(
    example: Callable[..., None], embedded: MetricsCollector, remote: MetricsCollector,
    capsys: pytest.CaptureFixture[str],
) -> None:
    printed: Dict[str, str] = {}
    for mode, collector in (("embedded", embedded), ("remote", remote)):
        example(*_services(collector), "_" + mode)
        printed[mode] = capsys.readouterr().out.replace("_" + mode, "")
    assert printed["embedded"] == printed["remote"]
    assert printed["embedded"].strip() or example is quick_start


def test_seed_degradation_example_finds_the_drop(embedded: MetricsCollector, capsys: pytest.CaptureFixture[str]) -> None:
    degradation(*_services(embedded), "_check")
    out = capsys.readouterr().out
    assert "Degraded: True" in out and "Severity: high" in out, out


def _comparable(value: object) -> object:
    """JSON with the read times (`from`, `to`) left out: they are each call's now."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in ("from", "to")}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.__name__)
def test_both_modes_read_the_same_objects(example: Callable[..., None], embedded: MetricsCollector,
                                         remote: MetricsCollector) -> None:
    for suffix, writer in (("_a", embedded), ("_b", remote)):
        example(*_services(writer), suffix + example.__name__)
    embedded.flush()
    readers = {"embedded": _services(embedded), "remote": _services(remote)}
    seen: Dict[str, object] = {}
    for mode, (collector, detector, alert_service) in readers.items():
        reads: List[object] = []
        for model, version in (("classifier", "v1.0"), ("history", "v1.0"), ("recommender", "v3.0"), ("managed", "v1")):
            for suffix in ("_a", "_b"):
                name = model + suffix + example.__name__
                try:
                    reads.append([r.to_dict() for r in detector.check_all_metrics(name, version)])
                    reads.append(collector.get_performance_history(name, version, hours=168).to_dict())
                    reads.append(collector.history(name, version, MetricType.ACCURACY, hours=24).to_dict())
                except modelwatch.NotFoundError as error:
                    reads.append(type(error).__name__)
        reads.append([a.to_dict() for a in alert_service.list_alerts(hours=None)])
        reads.append(alert_service.get_alert_summary(hours=None).to_dict())
        reads.append(sorted((r.to_dict() for r in alert_service.list_rules()), key=lambda r: str(r["id"])))
        seen[mode] = _comparable(reads)
    assert seen["embedded"] == seen["remote"]


def test_alert_config_applies_in_embedded_mode_and_is_refused_remotely(
    embedded: MetricsCollector, remote: MetricsCollector
) -> None:
    config = AlertConfig(
        enable_alerts=True,
        max_alerts_per_hour=10,
        max_alerts_per_model_per_hour=5,
        min_severity_to_notify=AlertSeverity.MEDIUM
    )
    alert_service = AlertService(DegradationDetector(embedded), config=config)
    assert alert_service.evaluate_model("nothing_here", "v1") == []
    with pytest.raises(modelwatch.ValidationError) as refused:
        AlertService(DegradationDetector(remote), config=config)
    assert refused.value.field == "config"
