// Overview: one row per model version. The list comes from one request (/models) and
// the open alerts from a second, so the table is interactive at once even with 1,000
// versions; the per-row details (health grade, trend, sparkline, last sample) load only
// for rows scrolled into view, a few requests at a time.
import { api, list, seriesPath, columns, allAlerts, enc, type Series } from "../api";
import { sparkline } from "../charts";
import { onLive } from "../live";
import { h, clear, ago, badge, limiter, markReady, hashParams, hashPath, setHashParams, SEVERITIES } from "../util";
import type uPlot from "uplot";

/** Which metric a model's sparkline shows: the first of these it has. */
const KEY_METRICS = ["accuracy", "f1_score", "auc_roc", "precision", "recall", "auc_pr", "r2_score", "mape", "rmse", "mae", "error_rate", "latency", "throughput"];

interface Row {
  model: string;
  version: string;
  tr: HTMLTableRowElement;
  grade: HTMLElement;
  trend: HTMLElement;
  spark: HTMLElement;
  last: HTMLElement;
  alerts: HTMLElement;
  health?: string;
  openAlerts: number;
  loaded: boolean;
  keyMetric?: string;
  chart?: uPlot;
}

export function overview(main: HTMLElement): () => void {
  const params = hashParams();
  const address = hashPath();
  const search = h("input", { type: "search", placeholder: "model or version", value: params.get("q") ?? "", "aria-label": "Search models and versions" });
  const gradeFilter = h("select", { "aria-label": "Health grade" },
    h("option", { value: "" }, "any health"),
    ...["excellent", "good", "fair", "poor", "unknown"].map((g) => h("option", { value: g, selected: params.get("grade") === g }, g)));
  const alertFilter = h("input", { type: "checkbox", id: "only-alerting", checked: params.get("alerting") === "1" });
  const count = h("span", { class: "muted" });
  const status = h("div", { role: "status" });
  const tbody = h("tbody");
  const table = h("table", { class: "grid overview" },
    h("thead", null, h("tr", null,
      h("th", { scope: "col" }, "Model"), h("th", { scope: "col" }, "Version"), h("th", { scope: "col" }, "Health"),
      // "wide-only" columns are hidden on a phone (style.css), so the table fits.
      h("th", { scope: "col", class: "wide-only" }, "Trend"), h("th", { scope: "col" }, "Open alerts"),
      h("th", { scope: "col", class: "wide-only" }, "Key metric (24 h)"), h("th", { scope: "col", class: "wide-only" }, "Last sample"))),
    tbody);
  clear(main,
    h("h1", null, "Models"),
    h("div", { class: "toolbar" }, search, gradeFilter, h("label", null, alertFilter, " only with open alerts"), count),
    status,
    h("div", { class: "scroll" }, table));

  const rows: Row[] = [];
  const versionsCache = new Map<string, Promise<any>>();
  const run = limiter(6);
  let gone = false;

  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const row = rows.find((r) => r.tr === entry.target);
      if (row && !row.loaded) { row.loaded = true; observer.unobserve(row.tr); void load(row); }
    }
  }, { rootMargin: "200px" });

  function versionsOf(model: string): Promise<any> {
    let promise = versionsCache.get(model);
    if (!promise) { promise = run(() => api(`/models/${enc(model)}/versions`)); versionsCache.set(model, promise); }
    return promise;
  }

  async function load(row: Row) {
    try {
      const versions = list(await versionsOf(row.model), "versions");
      const entry = versions.find((v: any) => v.version === row.version);
      if (!entry) return;
      clear(row.last, ago(entry.last_timestamp));
      // The server marks a version stale when it has sent nothing for 5 of its usual
      // intervals (at least 10 minutes): it has stopped reporting.
      if (entry.stale) {
        const usual = entry.usual_interval_seconds != null ? `; usual interval ${duration(entry.usual_interval_seconds)}` : "";
        row.tr.classList.add("stale");
        row.last.append(" ", h("span", { class: "badge b-stale", title: `no sample since ${entry.last_timestamp}${usual}` }, "stale"));
      }
      row.keyMetric = KEY_METRICS.find((m) => entry.metrics.includes(m)) ?? entry.metrics[0];
      const to = Date.parse(entry.last_timestamp) + 1;
      const from = to - 86400e3;
      const [series, history] = await Promise.all([
        run(() => api<Series>(`${seriesPath(row.model, row.version, row.keyMetric)}?from=${from}&to=${to}&max_points=96`)),
        run(() => api(`${seriesPath(row.model, row.version)}/history?hours=24`)).catch(() => null),
      ]);
      if (gone) return;
      const [xs, ys] = columns(series);
      row.spark.title = `${row.keyMetric}, last 24 h of data`;
      clear(row.spark, h("span", { class: "sr-only" }, row.keyMetric));
      row.chart = sparkline(row.spark, xs, ys);
      row.spark.append(h("span", { class: "spark-label" }, row.keyMetric));
      if (history) {
        row.health = history.overall_health ?? "unknown";
        clear(row.grade, badge(`grade-${row.health}`, row.health));
        if (history.health_score != null) row.grade.title = `health score ${Math.round(history.health_score)}`;
        clear(row.trend, trendText(history.health_trend));
        applyFilters();
      } else {
        clear(row.grade, h("span", { class: "muted", title: "the server gave no health for this version" }, "n/a"));
      }
    } catch (error) {
      clear(row.spark, h("span", { class: "error-inline", title: String(error) }, "could not load"));
    }
  }

  function applyFilters() {
    const q = search.value.trim().toLowerCase();
    const grade = gradeFilter.value;
    const alerting = alertFilter.checked;
    let shown = 0;
    for (const row of rows) {
      const visible = (!q || row.model.toLowerCase().includes(q) || row.version.toLowerCase().includes(q))
        && (!grade || row.health === grade)
        && (!alerting || row.openAlerts > 0);
      row.tr.hidden = !visible;
      if (visible) shown++;
    }
    count.textContent = `${shown} of ${rows.length} versions`;
    const next = new URLSearchParams();
    if (q) next.set("q", q);
    if (grade) next.set("grade", grade);
    if (alerting) next.set("alerting", "1");
    setHashParams(address, next);
  }
  search.addEventListener("input", applyFilters);
  gradeFilter.addEventListener("change", applyFilters);
  alertFilter.addEventListener("change", applyFilters);

  async function start() {
    let models: any[];
    try {
      models = list(await api("/models"), "models");
    } catch (error) {
      clear(status, h("p", { class: "error" }, `Cannot list the models: ${(error as Error).message}`));
      markReady(main);
      return;
    }
    if (gone) return;
    if (models.length === 0) {
      clear(status, h("div", { class: "empty" },
        h("p", null, "No models yet: nothing has recorded a metric."),
        h("p", null, "Send one with ", h("code", null, 'curl -XPOST localhost:7878/api/v1/metrics -d \'{"model":"m","version":"v1","metric":"accuracy","value":0.93}\''),
          " or start the server with ", h("code", null, "modelwatch serve --demo"), ".")));
      table.hidden = true;
      markReady(main);
      return;
    }
    const fragment = document.createDocumentFragment();
    for (const model of models) {
      for (const version of model.versions as string[]) {
        const row: Row = {
          model: model.model, version, tr: h("tr"), grade: h("td"), trend: h("td", { class: "wide-only" }), spark: h("td", { class: "spark wide-only" }),
          last: h("td", { class: "wide-only" }), alerts: h("td"), openAlerts: 0, loaded: false,
        };
        const href = `#/model/${enc(model.model)}/${enc(version)}`;
        row.tr.append(h("td", null, h("a", { href }, breakable(model.model))), h("td", null, h("a", { href, "aria-label": `${model.model} ${version}` }, version)),
          row.grade, row.trend, row.alerts, row.spark, row.last);
        row.tr.dataset.model = model.model;
        row.tr.dataset.version = version;
        clear(row.grade, h("span", { class: "muted" }, "…"));
        fragment.append(row.tr);
        rows.push(row);
      }
    }
    tbody.append(fragment);
    for (const row of rows) observer.observe(row.tr);
    applyFilters();
    markReady(main);
    void loadAlerts();
  }

  async function loadAlerts() {
    let alerts: any[];
    try {
      // Every open alert, however old: an alert still open is the version's concern.
      alerts = (await allAlerts(new URLSearchParams({ status: "open", hours: "all" }))).alerts;
    } catch (error) {
      if (gone) return;
      const missing = (error as { status?: number }).status === 404;
      clear(status, h("p", { class: missing ? "muted" : "error" }, missing
        ? "This server has no alerting, so open alerts are not shown."
        : `Open alerts could not be loaded: ${(error as Error).message}`));
      for (const row of rows) clear(row.alerts, h("span", { class: "muted" }, "n/a"));
      return;
    }
    // Left meanwhile: nothing of this page is shown any more.
    if (gone) return;
    const byVersion = new Map<string, Record<string, number>>();
    for (const alert of alerts) {
      const key = `${alert.model}\u0000${alert.version}`;
      const counts = byVersion.get(key) ?? {};
      counts[alert.severity] = (counts[alert.severity] ?? 0) + 1;
      byVersion.set(key, counts);
    }
    for (const row of rows) {
      const counts = byVersion.get(`${row.model}\u0000${row.version}`);
      row.openAlerts = counts ? Object.values(counts).reduce((a, b) => a + b, 0) : 0;
      clear(row.alerts, counts
        ? SEVERITIES.filter((s) => counts[s]).map((s) => h("a", { href: `#/alerts?model=${enc(row.model)}&severity=${s}&status=open`, class: `badge b-${s}`, title: `${counts[s]} open ${s}` }, `${counts[s]} ${s}`))
        : h("span", { class: "muted" }, "none"));
    }
    applyFilters();
  }

  // Live: a sample moves the row's "last sample"; an alert recounts the badges.
  const unsubscribe = onLive((event) => {
    if (event.type === "samples") {
      const row = rows.find((r) => r.model === event.data.model && r.version === event.data.version);
      if (row) {
        clear(row.last, ago(event.data.last_timestamp));
        row.tr.classList.remove("flash"); void row.tr.offsetWidth; row.tr.classList.add("flash");
        if (row.chart && event.data.metric === row.keyMetric) {
          const data = row.chart.data.map((c) => Array.from(c as ArrayLike<number>));
          data[0].push(Date.parse(event.data.last_timestamp) / 1000); data[1].push(event.data.last_value);
          row.chart.setData(data as any);
        }
      } else if (!rows.length) {
        // First data on an empty server: show the table.
        shownAgain();
      }
    } else {
      void loadAlerts();
    }
  });
  function shownAgain() { if (!gone) { gone = true; overviewAgain(main); } }
  function overviewAgain(el: HTMLElement) { cleanup(); clear(el); leaveNext = overview(el); }
  let leaveNext: (() => void) | undefined;

  void start();
  function cleanup() {
    gone = true;
    observer.disconnect();
    unsubscribe();
    for (const row of rows) row.chart?.destroy();
  }
  return () => { cleanup(); leaveNext?.(); };
}

/** A name that may wrap after each "_", "-" or "." (a narrow screen), never inside a word. */
function breakable(name: string): (string | HTMLElement)[] {
  return name.split(/(?<=[_.-])/).flatMap((part, i) => (i === 0 ? [part] : [h("wbr"), part]));
}

/** "45 s", "5 min", "2 h", "1 d": a usual interval. */
function duration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 360) / 10} h`;
  return `${Math.round(seconds / 8640) / 10} d`;
}

function trendText(trend: string | undefined): HTMLElement {
  const arrow = trend === "improving" ? "↗" : trend === "degrading" ? "↘" : trend === "stable" ? "→" : "";
  return h("span", { class: `trend t-${trend ?? "unknown"}` }, arrow ? `${arrow} ${trend}` : "—");
}
