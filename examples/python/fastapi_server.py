"""A FastAPI model server monitored by modelwatch: the ASGI middleware measures
/predict, a degradation rule watches its latency, and an alert arrives when the model
slows down.

    pip install modelwatch-monitor fastapi uvicorn httpx
    python examples/python/fastapi_server.py            # MODELWATCH_DB picks the database

It serves the app with uvicorn in a background thread, measures the usual latency and
records an hour of it as history, then sends traffic while the model is fast and then
slow, evaluating the rule after each round until the alert fires. Run `modelwatch serve` on the same
database to watch it on the dashboard.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import threading
import time
from typing import Dict, List

import httpx
import uvicorn
from fastapi import FastAPI

import modelwatch
from modelwatch import AlertService, AlertSeverity, DegradationDetector, MetricsCollector, MetricType

MODEL, VERSION = "fraud_detector", "v2.1"
PORT = int(os.environ.get("PORT", "8765"))
database = os.environ.get("MODELWATCH_DB") or os.path.join(tempfile.mkdtemp(), "modelwatch.db")
collector = MetricsCollector(database)
recorder = modelwatch.Recorder(database, interval=1.0)

app = FastAPI()
app.add_middleware(modelwatch.ASGIMiddleware, routes={"/predict": (MODEL, VERSION)}, recorder=recorder)
slowness = {"seconds": 0.002}


@app.post("/predict")
def predict(data: Dict[str, float]) -> Dict[str, bool]:
    time.sleep(slowness["seconds"] * random.uniform(0.8, 1.2))  # the model's work
    return {"fraud": sum(data.values()) > 1.0}


def serve() -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, port=PORT, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def send(client: httpx.Client, requests: int = 20) -> float:
    """Sends traffic, stores the recorder's window and returns its mean latency (ms)."""
    for _ in range(requests):
        client.post("/predict", json={"amount": random.random(), "risk": random.random()})
    recorder.flush()
    return collector.history(MODEL, VERSION, MetricType.LATENCY, hours=1).points[-1].value


def main() -> None:
    server = serve()
    detector = DegradationDetector(collector)
    alert_service = AlertService(detector)
    alerts: List[modelwatch.Alert] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{PORT}") as client:
        # The first requests pay for warming up (connections, imports, caches): the usual
        # latency is the median of three rounds after one thrown away.
        send(client)
        usual = statistics.median(send(client) for _ in range(3))
        # The last hour as history: this machine's usual latency, every minute.
        now = modelwatch._native.now_ms()
        times = [now - 3_600_000 + 60_000 * i for i in range(59)]
        collector.record_many(model_name=MODEL, model_version=VERSION, metric_type=MetricType.LATENCY,
                              values=[random.gauss(usual, usual * 0.03) for _ in times], timestamps=times)
        rule = alert_service.create_degradation_rule(
            rule_name="Latency Rise",
            model_name=MODEL,
            metric_type=MetricType.LATENCY,
            max_degradation_percentage=20.0,
            severity=AlertSeverity.HIGH,
            for_evaluations=2,
            # Each new value against the hour before it: this demo has only an hour of
            # history, too little for the comparison window the default picks for a
            # series sampled every minute.
            comparison="latest",
        )
        print(f"usual latency {usual:.1f} ms; rule {rule.rule_id}: {rule.rule_name} "
              f"(latency {rule.max_degradation_percentage:.0f} % worse, twice in a row)")
        for round_ in range(1, 9):
            if round_ == 3:
                slowness["seconds"] = 0.02
                print("the model slows down: 20 ms a prediction")
            latency = send(client)
            alerts = alert_service.evaluate_model(MODEL, VERSION)
            print(f"round {round_}: mean latency {latency:.1f} ms, new alerts: {len(alerts)}")
            for alert in alerts:
                print(f"🚨 {alert.severity.value}: {alert.message}")
            if alerts:
                break
            time.sleep(0.2)
    server.should_exit = True
    stats = recorder.stats()
    print(f"requests {stats['requests']}, samples delivered {stats['delivered']}, dropped {stats['dropped']}")
    if not alerts:
        raise SystemExit("no alert arrived")


if __name__ == "__main__":
    main()
