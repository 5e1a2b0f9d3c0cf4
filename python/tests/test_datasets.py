"""Datasets through the Python API, in embedded and in remote mode alike: reads, checks
and rules take a ``dataset`` argument, datasets are never mixed, and a rule for each
dataset alerts only for the dataset that degraded."""

from __future__ import annotations

import numpy as np

import modelwatch
from modelwatch import MetricType

from conftest import Services

MINUTE_MS = 60_000
NOW_MS = (modelwatch._native.now_ms() // MINUTE_MS) * MINUTE_MS - MINUTE_MS


def test_reads_checks_and_rules_take_a_dataset(services: Services) -> None:
    collector, detector, alert_service = services
    mode = "remote" if isinstance(collector.backend, modelwatch.Client) else "embedded"
    model = f"datasets-{mode}"
    times = np.arange(NOW_MS - 30 * MINUTE_MS, NOW_MS + 1, MINUTE_MS, dtype=np.int64)
    steady = 0.92 + 0.002 * np.sin(np.arange(len(times)))
    dropped = steady.copy()
    dropped[-10:] = 0.60
    collector.record_many(model_name=model, model_version="v1", metric_type=MetricType.ACCURACY,
                          values=steady, timestamps=times)
    collector.record_many(model_name=model, model_version="v1", metric_type=MetricType.ACCURACY,
                          values=dropped, timestamps=times, dataset="canary")
    collector.flush()

    canary = collector.history(model, "v1", MetricType.ACCURACY, start=int(times[0]), dataset="canary")
    default = collector.history(model, "v1", MetricType.ACCURACY, start=int(times[0]))
    assert canary.count == default.count == len(times)
    assert min(point.value for point in canary.points) == 0.60
    assert min(point.value for point in default.points) > 0.9
    assert canary.dataset == "canary" and default.dataset == "default"
    lowest = [collector.get_performance_history(model, "v1", 1, dataset=name).metric_summaries[0].min
              for name in ("canary", None)]
    assert lowest[0] == 0.60 and lowest[1] is not None and lowest[1] > 0.9
    checked = [detector.check_degradation(model, "v1", MetricType.ACCURACY, 1, dataset=name).current_value
               for name in ("canary", "default")]
    assert checked[0] == 0.60 and checked[1] is not None and checked[1] > 0.9
    assert [r.current_value for r in detector.check_all_metrics(model, "v1", 1, dataset="canary")] == [0.60]

    each = alert_service.create_rule(rule_name="low on each", model_name=model, metric_type=MetricType.ACCURACY,
                                     threshold_value=0.8, comparison_operator="lt", for_evaluations=1,
                                     dataset="*")
    only_default = alert_service.create_rule(rule_name="low on default", model_name=model,
                                             metric_type=MetricType.ACCURACY, threshold_value=0.8,
                                             comparison_operator="lt", for_evaluations=1)
    assert (each.dataset, only_default.dataset) == ("*", "default")
    # The server may evaluate on its own first: the alerts are read back, not taken from
    # what this evaluation created.
    alert_service.evaluate_model(model, "v1")
    alerts = alert_service.list_alerts(model, hours=None)
    assert [(alert.rule_id, alert.dataset) for alert in alerts] == [(each.id, "canary")]
    assert "on dataset canary" in alerts[0].message
    again = alert_service.get_alert(alerts[0].id)
    assert again.dataset == "canary" and again.to_dict()["dataset"] == "canary"
