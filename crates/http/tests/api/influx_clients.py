"""The official Python InfluxDB clients against a modelwatch server (crates/http/tests/api/influx.rs).

v1 (`influxdb`): ping, CREATE DATABASE, write_points, query with and without epoch.
v2 (`influxdb-client`): ping, health, ready, a write in the product description's
shape (measurement performance_metric, tags model_name, model_version, metric_type,
field value), and Flux queries (raw points, aggregateWindow, last, an unsupported
function refused). Prints OK on success; any failure raises.

Usage: python influx_clients.py HOST PORT NOW_MS
"""

import sys

from influxdb import InfluxDBClient
from influxdb_client import InfluxDBClient as InfluxDBClientV2, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

host, port, now_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
minute_ms = 60_000

# ---- v1 ----
v1 = InfluxDBClient(host=host, port=port, database="modelwatch")
version = v1.ping()
assert version.startswith("1."), version
v1.create_database("telegraf")
assert {"name": "modelwatch"} in v1.get_list_database(), v1.get_list_database()

points = [
    {
        "measurement": "model_metrics",
        "tags": {"model": "fraud", "version": "v1"},
        "fields": {"accuracy": 0.90 - 0.01 * i, "latency": 40.0 + i},
        "time": (now_ms - (10 - i) * minute_ms) * 1_000_000,
    }
    for i in range(10)
]
assert v1.write_points(points, time_precision="n")

result = v1.query(
    'SELECT mean("accuracy"), max("latency") FROM "model_metrics" '
    "WHERE \"model\" = 'fraud' AND time >= now() - 10m AND time < now() "
    'GROUP BY time(5m), "version" fill(null)',
    epoch="ms",
)
rows = list(result.get_points(measurement="model_metrics", tags={"version": "v1"}))
assert [row["time"] for row in rows] == [now_ms - 10 * minute_ms, now_ms - 5 * minute_ms], rows
assert abs(rows[0]["mean"] - 0.88) < 1e-9 and rows[0]["max"] == 44.0, rows
assert abs(rows[1]["mean"] - 0.83) < 1e-9 and rows[1]["max"] == 49.0, rows

# Without epoch: RFC 3339 times, as the client's default.
result = v1.query("SELECT last(\"accuracy\") FROM \"model_metrics\" WHERE time >= now() - 1h")
rows = list(result.get_points())
assert len(rows) == 1 and rows[0]["time"] == "2024-05-01T11:00:00Z", rows
assert abs(rows[0]["last"] - (0.90 - 0.01 * 9)) < 1e-12, rows

measurements = v1.get_list_measurements()
assert {"name": "model_metrics"} in measurements, measurements

try:
    v1.query('SELECT percentile("accuracy", 95) FROM "model_metrics"')
except Exception as error:  # the client raises InfluxDBClientError with the message
    assert "percentile() is not supported" in str(error), error
else:
    raise AssertionError("an unsupported function was accepted")

# ---- v2 ----
with InfluxDBClientV2(url=f"http://{host}:{port}", token="unused", org="modelwatch") as v2:
    assert v2.ping() is True
    health = v2.health()
    assert health.status == "pass" and health.name == "influxdb", health
    ready = v2.ready()
    assert ready.status == "ready", ready
    write = v2.write_api(write_options=SYNCHRONOUS)
    write.write(
        bucket="modelwatch",
        record=Point("performance_metric")
        .tag("model_name", "churn")
        .tag("model_version", "v3")
        .tag("metric_type", "accuracy")
        .field("value", 0.77)
        .time(now_ms - minute_ms, WritePrecision.MS),
        write_precision=WritePrecision.MS,
    )

    # Flux, as Grafana's Flux data source and the v2 client send it.
    query = v2.query_api()
    tables = query.query(
        'from(bucket: "modelwatch") |> range(start: -1h) '
        '|> filter(fn: (r) => r._measurement == "model_metrics" and r._field == "accuracy" and r.model == "fraud")'
    )
    assert len(tables) == 1, tables
    records = tables[0].records
    assert len(records) == 10, records
    assert records[0].get_measurement() == "model_metrics" and records[0].get_field() == "accuracy"
    assert records[0].values["model"] == "fraud" and records[0].values["version"] == "v1"
    assert abs(records[0].get_value() - 0.90) < 1e-12 and abs(records[-1].get_value() - 0.81) < 1e-12
    assert int(records[-1].get_time().timestamp() * 1000) == now_ms - minute_ms, records[-1].get_time()

    windows = query.query(
        'from(bucket: "modelwatch") |> range(start: -10m, stop: now()) '
        '|> filter(fn: (r) => r._measurement == "model_metrics" and r._field == "latency") '
        '|> aggregateWindow(every: 5m, fn: max, createEmpty: false) |> yield(name: "max")'
    )
    rows = [(int(r.get_time().timestamp() * 1000), r.get_value()) for t in windows for r in t.records]
    # A window is stamped with its stop, as Flux's aggregateWindow does.
    assert rows == [(now_ms - 5 * minute_ms, 44.0), (now_ms, 49.0)], rows

    last = query.query(
        'from(bucket: "modelwatch") |> range(start: -1h) '
        '|> filter(fn: (r) => r._measurement == "performance_metric" and r.model_name == "churn") |> last()'
    )
    assert [r.get_value() for t in last for r in t.records] == [0.77], last
    assert last[0].records[0].values["metric_type"] == "accuracy", last[0].records[0].values

    try:
        query.query('from(bucket: "modelwatch") |> range(start: -1h) |> pivot(rowKey: ["_time"])')
    except Exception as error:  # the client raises ApiException with the body's message
        assert "pivot() is not supported" in str(error.body if hasattr(error, "body") else error), error
    else:
        raise AssertionError("an unsupported Flux function was accepted")

# The product description's shape reads back through v1's InfluxQL.
result = v1.query(
    "SELECT \"value\" FROM \"performance_metric\" WHERE \"model_name\" = 'churn' AND time >= now() - 1h",
    epoch="ms",
)
rows = list(result.get_points())
assert rows == [{"time": now_ms - minute_ms, "value": 0.77}], rows
print("OK")
