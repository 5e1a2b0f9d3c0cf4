"""Metrics computed by modelwatch from logged predictions and labels (issue 22) agree
with scikit-learn's on the same data to 1e-9: the CLI logs predictions (JSON Lines) and
labels (CSV, some before their predictions, some twice), and each window's metrics are
read back as ordinary metric series. The package logs them too, embedded and through a
real server's HTTP API, with the same counts, metrics and errors. The drift of each
window's scores from the reference window agrees with SciPy's `ks_2samp` and
`jensenshannon` (and PSI's formula) on the same binned data, with no label logged."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
from bisect import bisect_left
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon  # type: ignore[import-untyped]
from scipy.stats import ks_2samp  # type: ignore[import-untyped]
from sklearn import metrics  # type: ignore[import-untyped]

import modelwatch
from conftest import Services, modelwatch_command

HOUR_MS = 3_600_000
START_MS = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS
THRESHOLD = 0.6


def command() -> str:
    """The wheel's `modelwatch`, or a build's binary named by MODELWATCH_COMMAND."""
    return os.environ.get("MODELWATCH_COMMAND") or modelwatch_command()


def cli(db: Path, *args: str) -> Any:
    done = subprocess.run(
        [command(), "--db", str(db), "--format", "json", *args],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def series(db: Path, model: str, metric: str) -> Dict[int, float]:
    history = cli(
        db, "metrics", "history", model, "v1", "--metric", metric, "--hours", "all",
        "--dataset", "predictions",
    )
    return {hour_of(sample["timestamp"]): sample["value"] for sample in history["samples"]}


def hour_of(timestamp: str) -> int:
    ms = int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
    return (ms - START_MS) // HOUR_MS


def close(ours: float, theirs: float, what: str) -> None:
    assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12), (what, ours, theirs)


def write_jsonl(path: Path, rows: List[Dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_csv(path: Path, rows: List[Dict[str, Any]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "model", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def log_events(
    db: Path, tmp_path: Path, model: str, predictions: List[Dict[str, Any]], truths: Dict[str, float]
) -> None:
    """Some labels before their predictions, some twice (the later one counts), the rest after."""
    rng = random.Random(model)
    ids = sorted(truths)
    rng.shuffle(ids)
    early, late = ids[: len(ids) // 4], ids[len(ids) // 4:]
    twice = late[:20]
    first = [{"id": i, "model": model, "label": truths[i]} for i in early]
    wrong = [{"id": i, "model": model, "label": 1.0 - truths[i] if model == "clf" else truths[i] + 7.0} for i in twice]
    rest = [{"id": i, "model": model, "label": truths[i]} for i in late]
    pending = cli(db, "labels", "log", str(write_csv(tmp_path / f"{model}-early.csv", first)))
    assert pending["pending"] == len(early)
    logged = cli(db, "predictions", "log", str(write_jsonl(tmp_path / f"{model}.jsonl", predictions)))
    assert (logged["accepted"], logged["labelled"]) == (len(predictions), len(early))
    cli(db, "labels", "log", str(write_csv(tmp_path / f"{model}-wrong.csv", wrong)))
    after = cli(db, "labels", "log", str(write_csv(tmp_path / f"{model}-late.csv", rest)))
    assert after["duplicates"] == len(twice)


def by_window(predictions: List[Dict[str, Any]], truths: Dict[str, float]) -> Dict[int, Tuple[int, List[Dict[str, Any]]]]:
    windows: Dict[int, Tuple[int, List[Dict[str, Any]]]] = {}
    for p in predictions:
        hour = (p["timestamp"] - START_MS) // HOUR_MS
        count, labelled = windows.get(hour, (0, []))
        if p["id"] in truths:
            labelled = labelled + [p]
        windows[hour] = (count + 1, labelled)
    return windows


def test_classification_metrics_match_scikit_learn(tmp_path: Path) -> None:
    db = tmp_path / "clf.db"
    rng = random.Random(22)
    predictions, truths = [], {}
    for n in range(900):
        truth = 1.0 if rng.random() < 0.35 else 0.0
        # Two decimals: many tied scores, as AUC's tie handling must get right.
        score = round(min(1.0, max(0.0, rng.gauss(0.65 if truth else 0.4, 0.2))), 2)
        pid = f"c{n}"
        predictions.append({"id": pid, "model": "clf", "version": "v1", "timestamp": START_MS + rng.randrange(3 * HOUR_MS), "score": score})
        if rng.random() < 0.8:
            truths[pid] = truth
    cli(db, "predictions", "config", "clf", "--window", "1h", "--task", "classification", "--threshold", str(THRESHOLD))
    log_events(db, tmp_path, "clf", predictions, truths)
    expected: Dict[str, Callable[[List[float], List[float], List[float]], float]] = {
        "accuracy": lambda y, s, p: metrics.accuracy_score(y, p),
        "precision": lambda y, s, p: metrics.precision_score(y, p),
        "recall": lambda y, s, p: metrics.recall_score(y, p),
        "f1_score": lambda y, s, p: metrics.f1_score(y, p),
        "auc_roc": lambda y, s, p: metrics.roc_auc_score(y, s),
        "auc_pr": lambda y, s, p: metrics.average_precision_score(y, s),
    }
    ours = {name: series(db, "clf", name) for name in [*expected, "label_coverage"]}
    windows = by_window(predictions, truths)
    assert len(windows) == 3
    for hour, (count, labelled) in windows.items():
        y = [truths[p["id"]] for p in labelled]
        s = [p["score"] for p in labelled]
        p = [1.0 if score >= THRESHOLD else 0.0 for score in s]
        close(ours["label_coverage"][hour], len(labelled) / count, f"coverage {hour}")
        for name, reference in expected.items():
            close(ours[name][hour], float(reference(y, s, p)), f"{name} {hour}")


def test_regression_metrics_match_scikit_learn(tmp_path: Path) -> None:
    db = tmp_path / "reg.db"
    rng = random.Random(7)
    predictions, truths = [], {}
    for n in range(700):
        truth = rng.uniform(-50.0, 200.0)
        pid = f"r{n}"
        predictions.append({"id": pid, "model": "reg", "version": "v1", "timestamp": START_MS + rng.randrange(2 * HOUR_MS), "value": truth + rng.gauss(0.0, 5.0)})
        if rng.random() < 0.7:
            truths[pid] = truth
    cli(db, "predictions", "config", "reg", "--window", "1h", "--task", "regression")
    log_events(db, tmp_path, "reg", predictions, truths)
    expected: Dict[str, Callable[[List[float], List[float]], float]] = {
        "mae": metrics.mean_absolute_error,
        "mse": metrics.mean_squared_error,
        "rmse": metrics.root_mean_squared_error,
        "r2_score": metrics.r2_score,
        "mape": metrics.mean_absolute_percentage_error,
    }
    ours = {name: series(db, "reg", name) for name in [*expected, "label_coverage"]}
    windows = by_window(predictions, truths)
    assert len(windows) == 2
    for hour, (count, labelled) in windows.items():
        y = [truths[p["id"]] for p in labelled]
        yhat = [p["value"] for p in labelled]
        close(ours["label_coverage"][hour], len(labelled) / count, f"coverage {hour}")
        for name, reference in expected.items():
            close(ours[name][hour], float(reference(y, yhat)), f"{name} {hour}")


def decile_bins(reference: List[float], values: List[float]) -> List[int]:
    """Counts of `values` in the reference's bins as modelwatch cuts them: below its
    lowest value, one bin per decile (a value's bin closes once the reference's
    cumulative count reaches k/10), above its highest. (Scores 5 % or more apart fall in
    buckets of their own, so buckets are values here.)"""
    edges: List[float] = []
    cumulative, following = 0, 1
    for value in sorted(set(reference)):
        cumulative += reference.count(value)
        reached = False
        while following <= 10 and cumulative * 10 >= len(reference) * following:
            reached, following = True, following + 1
        if reached:
            edges.append(value)
    counts = [0] * (len(edges) + 2)
    lowest = min(reference)
    for value in values:
        counts[0 if value < lowest else bisect_left(edges, value) + 1] += 1
    return counts


def test_drift_matches_scipy_on_the_same_binned_data(tmp_path: Path) -> None:
    db = tmp_path / "drift.db"
    rng = random.Random(4)
    levels = [round(0.1 * n, 1) for n in range(1, 11)]
    # The reference hour, a like one, one moved towards high scores, and one out of the
    # reference's range; labels never come.
    weights = [[1, 2, 4, 6, 8, 8, 6, 4, 2, 1], [1, 2, 5, 6, 7, 8, 6, 4, 2, 1], [0, 0, 1, 1, 2, 4, 6, 8, 8, 6]]
    scores: Dict[int, List[float]] = {
        hour: rng.choices(levels, weights=w, k=[300, 250, 280][hour]) for hour, w in enumerate(weights)
    }
    scores[3] = [1.5] * 120 + [0.1] * 30
    predictions = [
        {"id": f"d{hour}-{n}", "model": "drf", "version": "v1", "timestamp": START_MS + hour * HOUR_MS + n * 1000, "score": score}
        for hour, values in scores.items()
        for n, score in enumerate(values)
    ]
    cli(db, "predictions", "config", "drf", "--window", "1h", "--task", "classification")
    logged = cli(db, "predictions", "log", str(write_jsonl(tmp_path / "drift.jsonl", predictions)))
    assert (logged["accepted"], logged["labelled"]) == (len(predictions), 0)
    ours = {name: series(db, "drf", f"drift_{name}_score") for name in ["psi", "ks", "js"]}
    reference = scores[0]
    for hour, current in scores.items():
        r = np.array(decile_bins(reference, reference), dtype=float) / len(reference)
        c = np.array(decile_bins(reference, current), dtype=float) / len(current)
        rf, cf = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
        close(ours["psi"][hour], float(np.sum((cf - rf) * np.log(cf / rf))), f"psi {hour}")
        close(ours["ks"][hour], float(ks_2samp(reference, current).statistic), f"ks {hour}")
        close(ours["js"][hour], float(jensenshannon(r, c, base=2)), f"js {hour}")
    assert ours["psi"][0] == 0.0 and ours["psi"][2] > 0.25 and ours["js"][3] > ours["js"][1]


def test_the_package_logs_predictions_and_labels_and_reads_their_window_metrics(services: Services) -> None:
    collector = services.collector
    mode = "remote" if isinstance(collector.backend, modelwatch.Client) else "embedded"
    model = f"pkg_{mode}"
    start = datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    assert collector.prediction_config(model).configured is False
    config = collector.set_prediction_config(model, window="1h", task="classification", threshold=0.5)
    assert (config.window, config.task, config.threshold, config.configured) == ("1h", "classification", 0.5, True)
    config = collector.set_prediction_config(model, min_coverage=0.5)
    assert (config.task, config.min_coverage) == ("classification", 0.5)
    assert collector.prediction_config(model) == config

    early = collector.log_labels([{"id": "p1", "model": model, "label": 1}])
    assert (early.accepted, early.pending, early.labelled) == (1, 1, 0)
    event = {"model": model, "version": "v1"}
    logged = collector.log_predictions([
        {**event, "id": "p1", "timestamp": start + timedelta(minutes=5), "score": 0.9},
        {**event, "id": "p2", "timestamp": int(start.timestamp() * 1000) + 600_000, "score": np.float64(0.2)},
        {**event, "id": "p3", "timestamp": "2024-05-01T10:15:00Z", "class": True, "score": None},
        {**event, "id": "p1", "timestamp": start + timedelta(minutes=20), "score": 0.1},
    ])
    assert (logged.accepted, logged.duplicates, logged.labelled, logged.windows_recomputed) == (3, 1, 1, 1)

    def value(metric: str) -> float:
        points = collector.history(
            model, "v1", metric, start=start, end=start + timedelta(hours=1), dataset="predictions"
        ).points
        assert len(points) == 1 and points[0].timestamp == start, (metric, points)
        return points[0].value

    assert (value("label_coverage"), value("accuracy")) == (1 / 3, 1.0)
    # p2 right (0.2 < 0.5), p3 wrong: the window is recomputed from every label so far.
    later = collector.log_labels(pd.DataFrame({"id": ["p2", "p3"], "model": [model, model], "label": [0, 0]}))
    assert (later.labelled, later.pending, later.duplicates, later.windows_recomputed) == (2, 0, 0, 1)
    assert (value("label_coverage"), value("accuracy")) == (1.0, 2 / 3)

    # A bad event is named by its index and field, and nothing of its batch is stored.
    good = [{**event, "id": f"g{n}", "timestamp": start, "score": 0.5} for n in range(3)]
    with pytest.raises(modelwatch.ValidationError) as raised:
        collector.log_predictions([*good, {**event, "id": "b", "timestamp": start, "score": "high"}])
    assert raised.value.field == "predictions[3].score"
    with pytest.raises(modelwatch.ValidationError) as raised:
        collector.log_labels([{"id": "g0", "model": model, "label": 1}, {"id": "g1", "model": model}])
    assert raised.value.field == "labels[1].label"
    with pytest.raises(modelwatch.ValidationError) as raised:
        collector.set_prediction_config(f"{model}_new", window="1h")
    assert raised.value.field == "task"
    assert collector.log_predictions(good).accepted == 3


def test_the_package_logs_features_and_reads_their_drift(services: Services) -> None:
    collector = services.collector
    mode = "remote" if isinstance(collector.backend, modelwatch.Client) else "embedded"
    model = f"feat_{mode}"
    start = datetime(2024, 5, 1, 10, tzinfo=timezone.utc)
    collector.set_prediction_config(model, window="1h", task="classification")
    # 10:00 is the reference; 11:00 has the same scores and ages, its amounts far above.
    # A DataFrame gives features as feature.<name> columns (NaN: that one left out).
    frame = pd.DataFrame(
        [
            {
                "id": f"{hour}-{n}", "model": model, "version": "v1",
                "timestamp": start + timedelta(hours=hour, seconds=n), "score": 0.05 + (n % 10) / 10,
                "feature.amount": float(10 + n % 20 + 900 * hour),
                "feature.age": float("nan") if n % 10 == 0 else float(20 + n % 30),
            }
            for hour in (0, 1)
            for n in range(100)
        ]
    )
    assert collector.log_predictions(frame).accepted == 200

    def values(metric: str) -> List[float]:
        points = collector.history(
            model, "v1", metric, start=start, end=start + timedelta(hours=2), dataset="predictions"
        ).points
        return [point.value for point in points]

    assert values("drift_ks_feature_amount") == [0.0, 1.0]
    # The reference holds 90 ages (NaN left 10 out), fewer than a feature's reference
    # needs: no drift, so no series.
    with pytest.raises(modelwatch.NotFoundError):
        values("drift_ks_feature_age")
    assert values("drift_ks_score") == [0.0, 0.0]
    assert values("drift_psi_feature_amount")[1] > 1.0

    # Dicts give them as `features` (NumPy numbers too); late ones join their window.
    late = [
        {"id": f"late-{n}", "model": model, "version": "v1", "timestamp": start + timedelta(hours=1, minutes=30),
         "score": 0.05 + (n % 10) / 10, "features": {"amount": np.float64(10 + n % 20)}}
        for n in range(100)
    ]
    assert collector.log_predictions(late).accepted == 100
    assert values("drift_ks_feature_amount") == [0.0, 0.5]

    # A bad feature is named by its index and field, and nothing of its batch is stored.
    event = {"model": model, "version": "v1", "timestamp": start, "score": 0.5}
    for features, field in [
        ({"a b": 1}, "predictions[1].features"),
        ({f"f{n}": 1 for n in range(33)}, "predictions[1].features"),
        ({"amount": "lots"}, "predictions[1].features.amount"),
    ]:
        with pytest.raises(modelwatch.ValidationError) as raised:
            collector.log_predictions([{**event, "id": "ok"}, {**event, "id": "bad", "features": features}])
        assert raised.value.field == field, (features, raised.value)
    assert collector.log_predictions([{**event, "id": "ok"}]).accepted == 1
