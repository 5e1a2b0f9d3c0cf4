"""Remote mode: the embedded ``Database``'s calls over ``modelwatch serve``'s HTTP API.

Each method sends the request the matching route documents and returns its JSON, shaped
as the embedded mode returns it (the same wire types on the server), so the records in
``_wire`` and every service work unchanged on either. Single samples are validated here
by the same Rust code as in embedded mode, queued and posted in batches by a background
thread (``flush()`` and every read post what is queued first).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote, urlencode, urlsplit

from . import _native
from ._errors import (
    AuthError,
    ConflictError,
    ModelwatchError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)

#: Samples per POST.
BATCH = 10_000
#: Queued samples beyond which ``record`` posts in the caller.
MAX_QUEUED = 1_000_000
#: Alerts per page when listing (the API's largest page).
PAGE = 1000
#: Points per series request (the API's largest ``max_points``).
MAX_POINTS = 100_000
#: Predictions or labels per request (the API's largest batch).
MAX_EVENTS = 10_000


def _segment(text: str) -> str:
    return quote(text, safe="")


class Client:
    """``modelwatch serve`` at ``url`` (``http://127.0.0.1:7878``), with a bearer ``token``
    when the server has tokens. Pass it wherever a database goes:
    ``MetricsCollector(modelwatch.Client(url, token=…))``."""

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        timeout: float = 10.0,
        flush_interval: float = 0.05,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(f"{url!r} is not an http:// or https:// URL", "url")
        self.url = url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._flush_interval = flush_interval
        self._connection: Optional[http.client.HTTPConnection] = None
        self._request_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._queue: List[Dict[str, Any]] = []
        self._queue_lock = threading.Lock()
        self._failures: List[str] = []
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._run, name="modelwatch-client", daemon=True)
        self._flusher.start()

    @property
    def location(self) -> str:
        return self.url

    # -- HTTP --------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self._timeout)
        return self._connection

    def request(
        self,
        method: str,
        path: str,
        query: Optional[Mapping[str, Any]] = None,
        body: Any = None,
    ) -> Any:
        """Sends one request and returns its JSON (``None`` for an empty answer); errors
        are the package's exceptions."""
        target = self._base + path
        if query:
            target += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        with self._request_lock:
            for attempt in (1, 2):
                connection = self._connect()
                try:
                    connection.request(method, target, body=payload, headers=headers)
                    response = connection.getresponse()
                    status, data = response.status, response.read()
                    break
                except (OSError, http.client.HTTPException) as error:
                    connection.close()
                    self._connection = None
                    # A kept-alive connection the server closed: one fresh try.
                    if attempt == 2 or isinstance(error, (ConnectionRefusedError, TimeoutError)):
                        raise UnavailableError(f"cannot reach modelwatch at {self.url}: {error}") from error
        decoded = json.loads(data) if data else None
        if status < 400:
            return decoded
        body = decoded.get("error", {}) if isinstance(decoded, dict) else {}
        message = body.get("message") or f"HTTP {status}"
        if status == 400 or status == 413:
            raise ValidationError(message, body.get("field"))
        if status == 404:
            raise NotFoundError(message)
        if status == 409:
            raise ConflictError(message)
        if status in (401, 403):
            raise AuthError(message)
        if status >= 500:
            raise UnavailableError(f"{self.url}: {message}")
        raise ModelwatchError(f"{self.url}: HTTP {status}: {message}")

    # -- writes ------------------------------------------------------------------------

    def record(
        self,
        model: str,
        version: str,
        metric: str,
        value: float,
        timestamp: Union[int, str, None] = None,
        dataset: Optional[str] = None,
    ) -> Dict[str, Any]:
        self._check_open()
        self._report_failures()
        sample: Dict[str, Any] = _native.validate_sample(model, version, metric, value, timestamp, dataset)
        with self._queue_lock:
            self._queue.append(sample)
            queued = len(self._queue)
        if queued >= MAX_QUEUED:
            self.flush()
        return sample

    def record_columns(
        self,
        model: str,
        version: str,
        metric: str,
        values: Union[bytes, Sequence[float]],
        timestamps: Union[bytes, Sequence[int]],
        dataset: Optional[str] = None,
    ) -> int:
        samples: List[Dict[str, Any]] = _native.validate_columns(model, version, metric, values, timestamps, dataset)
        self._write(samples)
        return len(samples)

    def flush(self) -> None:
        self._check_open()
        self._write([])

    def queued(self) -> int:
        with self._queue_lock:
            return len(self._queue)

    def _write(self, more: List[Dict[str, Any]]) -> None:
        with self._write_lock:
            with self._queue_lock:
                queued, self._queue = self._queue, []
            refused: List[str] = []
            try:
                self._post(queued, refused)
            except BaseException:
                with self._queue_lock:
                    self._queue[:0] = queued
                raise
            self._post(more, refused)
        self._report_failures()
        if refused:
            raise ValidationError("; ".join(refused), "value")

    def _post(self, samples: List[Dict[str, Any]], refused: List[str]) -> None:
        """Posts in batches; a sample the server refuses is left out (and reported), as
        the embedded mode does, so one bad value does not lose its batch."""
        start = 0
        while start < len(samples):
            batch = samples[start : start + BATCH]
            try:
                self.request("POST", "/api/v1/metrics", body={"samples": batch})
            except ValidationError as error:
                index = _sample_index(error.field)
                if index is None or index >= len(batch):
                    raise
                bad = batch[index]
                refused.append(f"{bad['model']}/{bad['version']}/{bad['metric']} at {bad['timestamp']}: {error.message}")
                del samples[start + index]
                continue
            start += len(batch)

    def _run(self) -> None:
        while not self._closed.wait(self._flush_interval):
            if not self.queued():
                continue
            try:
                self._write([])
            except ModelwatchError as error:
                self._failures.append(str(error))
                # The server is down or restarting: wait a little before the next try.
                time.sleep(min(1.0, self._flush_interval * 10))

    def _report_failures(self) -> None:
        if self._failures:
            failures, self._failures = self._failures, []
            raise UnavailableError("queued samples were not stored yet: " + "; ".join(failures))

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise ModelwatchError(f"the client of {self.url} is closed")

    def _settle(self) -> None:
        self._check_open()
        if self.queued():
            self._write([])

    def define_metric(
        self, metric: str, lower_is_better: bool = False, min: Optional[float] = None, max: Optional[float] = None
    ) -> Dict[str, Any]:
        raise ModelwatchError(
            "the HTTP API does not declare metrics; run `modelwatch metrics define` or use an embedded database"
        )

    # -- reads and alerting ------------------------------------------------------------

    def _version_path(self, model: str, version: str) -> str:
        return f"/api/v1/models/{_segment(model)}/versions/{_segment(version)}"

    def check_degradation(
        self,
        model: str,
        version: str,
        metric: Optional[str] = None,
        baseline_hours: Optional[int] = None,
        comparison_hours: Optional[int] = None,
        dataset: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        self._settle()
        query = {
            "metric": metric,
            "baseline_hours": baseline_hours,
            "comparison_hours": comparison_hours,
            "dataset": dataset,
        }
        answer = self.request("GET", self._version_path(model, version) + "/degradation", query)
        results: List[Dict[str, Any]] = answer["results"]
        return results

    def performance_history(
        self, model: str, version: str, hours: float = 24.0, dataset: Optional[str] = None
    ) -> Dict[str, Any]:
        self._settle()
        query = {"hours": hours, "dataset": dataset}
        history: Dict[str, Any] = self.request("GET", self._version_path(model, version) + "/history", query)
        return history

    def series(
        self,
        model: str,
        version: str,
        metric: str,
        start: Union[int, str, None] = None,
        end: Union[int, str, None] = None,
        dataset: Optional[str] = None,
    ) -> Dict[str, Any]:
        self._settle()
        path = self._version_path(model, version) + f"/metrics/{_segment(metric)}"
        query = {"from": start, "to": end, "max_points": MAX_POINTS, "dataset": dataset}
        answer: Dict[str, Any] = self.request("GET", path, query)
        if answer.get("downsampled"):
            # More points than one answer holds: read the range in halves, so the answer
            # is the route's for every point (as embedded mode gives it).
            answer["points"] = self._split_points(path, answer, dataset)
            answer["downsampled"] = False
            answer["buckets"] = []
        return answer

    def _split_points(self, path: str, answer: Dict[str, Any], dataset: Optional[str]) -> List[Dict[str, Any]]:
        from ._wire import parse_time

        start = int(parse_time(answer["from"]).timestamp() * 1000)
        end = int(parse_time(answer["to"]).timestamp() * 1000) if answer.get("to") else _native.now_ms() + 1
        points: List[Dict[str, Any]] = []
        spans = [(start, end)]
        while spans:
            low, high = spans.pop(0)
            part = self.request("GET", path, {"from": low, "to": high, "max_points": MAX_POINTS, "dataset": dataset})
            if part.get("downsampled") and high - low > 1:
                middle = (low + high) // 2
                spans[:0] = [(low, middle), (middle, high)]
            else:
                points.extend(p for p in part["points"] if _ms(p["timestamp"]) < high)
        return points

    def create_rule(self, spec: Mapping[str, Any]) -> Dict[str, Any]:
        self._check_open()
        rule: Dict[str, Any] = self.request("POST", "/api/v1/rules", body=dict(spec))
        return rule

    def list_rules(self, model: Optional[str] = None) -> List[Dict[str, Any]]:
        self._check_open()
        rules: List[Dict[str, Any]] = self.request("GET", "/api/v1/rules", {"model": model})["rules"]
        return rules

    def evaluate_model(self, model: str, version: str) -> Dict[str, Any]:
        self._settle()
        report: Dict[str, Any] = self.request("POST", self._version_path(model, version) + "/evaluate")
        return report

    def get_alert(self, alert_id: str) -> Dict[str, Any]:
        self._check_open()
        alert: Dict[str, Any] = self.request("GET", f"/api/v1/alerts/{_segment(alert_id)}")
        return alert

    def acknowledge(self, alert_id: str, by: str) -> Dict[str, Any]:
        self._check_open()
        alert: Dict[str, Any] = self.request("POST", f"/api/v1/alerts/{_segment(alert_id)}/acknowledge", body={"by": by})
        return alert

    def resolve(self, alert_id: str, by: str, notes: Optional[str] = None) -> Dict[str, Any]:
        self._check_open()
        body: Dict[str, Any] = {"by": by}
        if notes is not None:
            body["notes"] = notes
        alert: Dict[str, Any] = self.request("POST", f"/api/v1/alerts/{_segment(alert_id)}/resolve", body=body)
        return alert

    def list_alerts(
        self,
        model: Optional[str] = None,
        version: Optional[str] = None,
        status: Optional[str] = None,
        severity: Optional[str] = None,
        hours: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        self._check_open()
        query: Dict[str, Any] = {
            "model": model,
            "version": version,
            "status": status,
            "severity": severity,
            "hours": hours,
            "limit": PAGE,
        }
        alerts: List[Dict[str, Any]] = []
        while True:
            page = self.request("GET", "/api/v1/alerts", query)
            alerts.extend(page["alerts"])
            if not page.get("next_cursor"):
                return alerts
            query["cursor"] = page["next_cursor"]

    def alert_summary(self, model: Optional[str] = None, hours: Optional[str] = None) -> Dict[str, Any]:
        self._check_open()
        summary: Dict[str, Any] = self.request("GET", "/api/v1/alerts/summary", {"model": model, "hours": hours})
        return summary

    # -- predictions and labels --------------------------------------------------------

    def log_predictions(self, predictions: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        """Posts at most ``MAX_EVENTS`` predictions (the API's objects), stored all or nothing."""
        self._check_open()
        logged: Dict[str, Any] = self.request("POST", "/api/v1/predictions", body={"predictions": list(predictions)})
        return logged

    def log_labels(self, labels: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        """Posts at most ``MAX_EVENTS`` labels (the API's objects), stored all or nothing."""
        self._check_open()
        logged: Dict[str, Any] = self.request("POST", "/api/v1/predictions/labels", body={"labels": list(labels)})
        return logged

    def prediction_config(self, model: str) -> Dict[str, Any]:
        self._check_open()
        config: Dict[str, Any] = self.request("GET", f"/api/v1/models/{_segment(model)}/prediction-config")
        return config

    def set_prediction_config(self, model: str, changes: Mapping[str, Any]) -> Dict[str, Any]:
        self._check_open()
        path = f"/api/v1/models/{_segment(model)}/prediction-config"
        config: Dict[str, Any] = self.request("PUT", path, body=dict(changes))
        return config

    def close(self) -> None:
        """Posts what is queued, then stops the background thread."""
        if self._closed.is_set():
            return
        try:
            self._write([])
        finally:
            self._closed.set()
            self._flusher.join(timeout=5)
            if self._connection is not None:
                self._connection.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"modelwatch.Client({self.url!r})"


def _sample_index(field: Optional[str]) -> Optional[int]:
    """``samples[3].value`` → 3."""
    if not field or not field.startswith("samples["):
        return None
    try:
        return int(field[len("samples[") : field.index("]")])
    except ValueError:
        return None


def _ms(text: str) -> int:
    from ._wire import parse_time

    return int(round(parse_time(text).timestamp() * 1000))
