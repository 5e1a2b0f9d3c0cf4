// A model version: one chart per metric over the chosen range, with the baseline band,
// the rules' lines and the alerts' firing/resolution markers; an optional overlay of
// another version; the degradation table and per-metric trends. New samples arrive
// over the event stream and are appended to the charts. Everything shown is of one
// dataset (segment), chosen with the dataset selector: datasets are never mixed.
// Metrics modelwatch computes from predictions (the `predictions` datasets) have a point
// per judged window, revised as labels arrive: their charts also draw each point's label
// coverage and say how complete the newest point is.
import { api, ApiError, allAlerts, list, seriesPath, columns, ranges, enc, type Series } from "../api";
import { metricChart, destroyChart, appendPoint, type ChartSeries, type Line, type Marker, type Overlays } from "../charts";
import { onLive } from "../live";
import { h, clear, time, counted, num, pct, pValue, badge, labelled, markReady, RANGES, hashParams, hashPath, setHashParams } from "../util";
import type uPlot from "uplot";

export function modelPage(main: HTMLElement, [model, version]: string[]): () => void {
  const params = hashParams();
  const address = hashPath();
  let range = params.get("range") ?? "24h";
  let compareWith = params.get("compare") ?? "";
  let customFrom = params.get("from");
  let customTo = params.get("to");
  // "" until the version's datasets are known; then one of them (`default` first).
  let dataset = params.get("dataset") ?? "";
  let gone = false;
  const charts = new Map<string, uPlot>();

  const rangeButtons = h("div", { class: "segmented", role: "group", "aria-label": "Time range" });
  const fromInput = h("input", { type: "datetime-local", "aria-label": "From (your time zone)" });
  const toInput = h("input", { type: "datetime-local", "aria-label": "To (your time zone)" });
  const customForm = h("form", { class: "custom-range", onsubmit: (e: Event) => {
    e.preventDefault();
    if (!fromInput.value || !toInput.value) return;
    range = "custom"; customFrom = String(new Date(fromInput.value).getTime()); customTo = String(new Date(toInput.value).getTime());
    void draw();
  } }, fromInput, h("span", { class: "dash", "aria-hidden": "true" }, "–"), toInput, h("button", { type: "submit" }, "Show"));
  const compareSelect = h("select", { "aria-label": "Compare with version" }, h("option", { value: "" }, "compare with…"));
  const datasetSelect = h("select", { "aria-label": "Dataset", name: "dataset" });
  const chartsBox = h("div", { class: "charts" });
  const degradationBox = h("section", { "aria-labelledby": "deg-h" });
  const status = h("div", { role: "status" });
  const absentNote = h("p", { class: "muted absent", hidden: true });
  clear(main,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Models"), " / ", model, " / ", version),
    h("h1", null, `${model} `, h("span", { class: "muted" }, version)),
    h("div", { class: "toolbar" }, rangeButtons, customForm, datasetSelect, compareSelect,
      h("span", { class: "muted hint" }, "Drag on a chart to zoom, double-click to reset.")),
    status, chartsBox, absentNote, degradationBox);

  for (const name of [...Object.keys(RANGES), "custom"]) {
    rangeButtons.append(h("button", { type: "button", "data-range": name, "aria-pressed": String(name === range), onclick: () => {
      if (name === "custom") { fromInput.focus(); return; }
      range = name; customFrom = customTo = null; void draw();
    } }, name));
  }
  compareSelect.addEventListener("change", () => { compareWith = compareSelect.value; void draw(); });
  datasetSelect.addEventListener("change", () => {
    dataset = datasetSelect.value;
    degradation = []; history = null;
    for (const metric of figures.keys()) showTrend(metric);
    for (const chart of charts.values()) destroyChart(chart);
    charts.clear();
    void draw().then(() => loadAnalysis());
  });
  /** The dataset as a query parameter, `&dataset=…` (the server's default is `default`). */
  const inDataset = () => `dataset=${enc(dataset)}`;

  let metrics: string[] = [];
  let lastTimestamp = Date.now();
  let rules: any[] = [];
  let alerts: any[] = [];
  let degradation: any[] = [];
  let history: any = null;
  const directions = new Map<string, string>();
  /** The model's label coverage a computed window needs before rules judge it (0–1). */
  let minCoverage: number | null = null;
  /** Whether the dataset shown holds metrics computed from predictions (issue 22). */
  const computed = () => dataset === COMPUTED_DATASET || dataset.startsWith(`${COMPUTED_DATASET}:`);
  /** Computed metrics that depend on labels: every one but the coverage itself and drift. */
  const needsLabels = (metric: string) => computed() && metric !== COVERAGE && !metric.startsWith("drift_");

  function timeWindow(): [number, number] {
    if (range === "custom" && customFrom && customTo) return [Number(customFrom), Number(customTo)];
    // Ranges end at the newest sample (or now, whichever is later), so a demo recorded
    // yesterday still shows data.
    const to = Math.max(Date.now(), lastTimestamp + 1);
    return [to - (RANGES[range] ?? RANGES["24h"]), to];
  }

  async function start() {
    clear(degradationBox, h("h2", { id: "deg-h" }, "Degradation"), h("p", { class: "muted" }, "Checking for degradation…"));
    // Rules and alerts are cheap reads: asked for at once, beside the version list, so
    // their lines and markers are there when the charts draw. Each may be missing on a
    // server without alerting, and the charts still draw.
    const context = Promise.all([
      api(`/rules?model=${enc(model)}`).catch(() => null),
      // Of any time: a custom range may lie weeks back, and markers outside the chart's
      // range are not drawn.
      allAlerts(new URLSearchParams({ model, version, hours: "all" })).catch(() => null),
    ]);
    let versions: any[];
    try {
      versions = list(await api(`/models/${enc(model)}/versions`), "versions");
    } catch (error) {
      clear(status, h("p", { class: "error" }, `Cannot load ${model}: ${(error as Error).message}`));
      markReady(main);
      return;
    }
    const entry = versions.find((v) => v.version === version);
    if (!entry) {
      clear(status, h("p", { class: "error" }, `${model} has no version ${version}. `, h("a", { href: "#/" }, "Back to the overview")));
      markReady(main);
      return;
    }
    metrics = entry.metrics;
    lastTimestamp = Date.parse(entry.last_timestamp);
    const datasets: string[] = entry.datasets?.length ? entry.datasets : ["default"];
    if (!datasets.includes(dataset)) dataset = datasets.includes("default") ? "default" : datasets[0];
    for (const name of datasets) datasetSelect.append(h("option", { value: name, selected: name === dataset }, `dataset: ${name}`));
    if (datasets.length < 2) datasetSelect.hidden = true;
    for (const other of versions) {
      if (other.version !== version) compareSelect.append(h("option", { value: other.version, selected: other.version === compareWith }, `compare with ${other.version}`));
    }
    if (versions.length < 2) compareSelect.hidden = true;
    if (datasets.some((name) => name === COMPUTED_DATASET || name.startsWith(`${COMPUTED_DATASET}:`))) {
      const config = await api<any>(`/models/${enc(model)}/prediction-config`).catch(() => null);
      minCoverage = typeof config?.min_coverage === "number" ? config.min_coverage : null;
    }
    await draw(context);
    await loadAnalysis();
  }

  /** The degradation check and the week's history are the slow reads (they compute over
   * the stored windows): asked for only once the charts are on screen, so they never
   * hold back the charts nor take the connections the series need. They add the
   * baseline band, the trends and the table. */
  async function loadAnalysis() {
    if (gone) return;
    const asked = dataset;
    const [d, hi] = await Promise.all([
      api(`${seriesPath(model, version)}/degradation?${inDataset()}`).catch((e) => e),
      api(`${seriesPath(model, version)}/history?hours=168&${inDataset()}`).catch(() => null),
    ]);
    if (gone || asked !== dataset) return;
    degradation = d instanceof Error ? [] : list(d, "results", "metrics", "degradations");
    history = hi;
    for (const [metric, chart] of charts) (chart as any).setOverlays(overlaysFor(metric), true);
    // Every figure's: a metric without samples in this dataset has no trend in it.
    for (const metric of figures.keys()) showTrend(metric);
    renderDegradation(d instanceof Error ? d : null);
  }

  /** The figure of each metric, created once and kept across redraws so the layout stays put. */
  const figures = new Map<string, { figure: HTMLElement; trend: HTMLElement; count: HTMLElement; box: HTMLElement }>();
  function figureFor(metric: string) {
    let parts = figures.get(metric);
    if (!parts) {
      const trend = h("span");
      const count = h("span", { class: "muted" });
      const box = h("div", { class: "chart" });
      const figure = h("figure", { class: "card", "data-metric": metric }, h("figcaption", null, h("strong", null, metric), " ", trend, count), box);
      parts = { figure, trend, count, box };
      figures.set(metric, parts);
      chartsBox.append(figure);
      showTrend(metric);
    }
    return parts;
  }

  function showTrend(metric: string) {
    const parts = figures.get(metric);
    const summary = (history?.metric_summaries ?? []).find((s: any) => s.metric === metric);
    if (parts) clear(parts.trend, summary ? trendWord(summary.trend) : null);
  }

  async function draw(context?: Promise<[any, any]>) {
    // Left meanwhile: nothing of this page is shown any more.
    if (gone) return;
    const [from, to] = timeWindow();
    for (const button of rangeButtons.querySelectorAll<HTMLButtonElement>("button")) button.setAttribute("aria-pressed", String(button.dataset.range === range));
    const p = new URLSearchParams();
    if (range !== "24h") p.set("range", range);
    if (range === "custom" && customFrom && customTo) { p.set("from", customFrom); p.set("to", customTo); }
    if (compareWith) p.set("compare", compareWith);
    if (dataset && dataset !== "default") p.set("dataset", dataset);
    setHashParams(address, p);
    fromInput.value = localInput(from); toInput.value = localInput(to);
    if (metrics.length === 0) { clear(chartsBox, h("p", { class: "empty" }, "This version has no metrics.")); markReady(main); return; }
    // One layout, read once: every chart is as wide as the first figure's box, and a
    // series needs no more points than the chart has pixels across.
    const boxes = metrics.map((metric) => figureFor(metric).box);
    const width = Math.max(boxes[0].clientWidth, 280);
    const points = Math.min(Math.max(Math.round(width * devicePixelRatio), 200), 2000);
    const query = `?from=${Math.floor(from)}&to=${Math.ceil(to)}&max_points=${points}&${inDataset()}`;
    const requests = metrics.map((metric) => Promise.all([
      api<Series>(`${seriesPath(model, version, metric)}${query}`).catch((e: Error) => e),
      compareWith ? api<Series>(`${seriesPath(model, compareWith, metric)}${query}`).catch(() => null) : null,
    ]));
    // Each computed window's coverage, at the window's start as its metrics are.
    const coverageRequest = metrics.some(needsLabels)
      ? api<Series>(`${seriesPath(model, version, COVERAGE)}${query}`).then(columns).catch(() => null)
      : Promise.resolve(null);
    if (context) {
      const [r, a] = await context;
      rules = list(r, "rules").filter((rule: any) => rule.model === model && (!rule.version || rule.version === version));
      alerts = (a?.alerts ?? []).filter((alert: any) => alert.model === model && alert.version === version);
    }
    const results = await Promise.all(requests);
    const coverage = await coverageRequest;
    if (gone) return;
    const absent: string[] = [];
    results.forEach(([own, other], i) => {
      const metric = metrics[i];
      const { count, box } = figureFor(metric);
      const old = charts.get(metric);
      if (old) { destroyChart(old); charts.delete(metric); }
      clear(box);
      // A metric this dataset has no samples of: one line below the charts names them all,
      // rather than a card each (a computed dataset lacks every pushed metric).
      const missing = own instanceof ApiError && own.status === 404;
      figureFor(metric).figure.hidden = missing;
      if (missing) { clear(count); absent.push(metric); return; }
      if (own instanceof Error) {
        clear(count);
        box.append(h("p", { class: "error" }, `Cannot load ${metric}: ${own.message}`));
        return;
      }
      directions.set(metric, own.direction);
      count.textContent = ` ${counted(own.count, "sample")}${own.downsampled ? `, shown as ${own.buckets.length} buckets (mean line, min–max band)` : ""}`;
      const [xs, ys] = columns(own);
      if (xs.length === 0) box.append(h("p", { class: "empty" }, `No ${metric} samples in this range.`));
      const series: ChartSeries[] = [{ label: version, xs, ys, ...ranges(own) }];
      if (other) { const [ox, oy] = columns(other); series.push({ label: compareWith, xs: ox, ys: oy, dashed: true, ...ranges(other) }); }
      if (needsLabels(metric) && coverage) {
        series.push({ label: "labelled", xs: coverage[0], ys: coverage[1], scale: "share", dashed: true, color: cssVar("--muted") });
        count.textContent += completeness(xs, coverage);
      }
      const chart = metricChart(box, series, overlaysFor(metric), {
        onZoom: (f, t) => { range = "custom"; customFrom = String(Math.floor(f)); customTo = String(Math.ceil(t)); void draw(); },
        width, timeWindow: [from, to],
      });
      chart.root.addEventListener("dblclick", () => { range = "24h"; customFrom = customTo = null; void draw(); });
      // The chart's data where the browser tests (and anyone in the console) can read it.
      (box as any).uplot = chart;
      charts.set(metric, chart);
    });
    clear(absentNote, absent.length === 0 ? null : `${absent.join(", ")}: no samples in dataset ${dataset}.`);
    absentNote.hidden = absent.length === 0;
    // uPlot paints in the next frame; "ready" means the charts are on screen.
    requestAnimationFrame(() => markReady(main));
  }

  function overlaysFor(metric: string): Overlays {
    const direction = directions.get(metric) ?? "higher_is_better";
    const lines: Line[] = [];
    const deg = degradation.find((d: any) => d.metric === metric);
    const baseline: number | null = deg?.baseline_value ?? null;
    for (const rule of rules.filter((r: any) => r.metric === metric && r.enabled !== false)) {
      if (rule.condition_type === "threshold" || rule.threshold_value != null) {
        lines.push({ value: rule.threshold_value, label: `${rule.name} (${rule.comparison_operator} ${num(rule.threshold_value)})` });
        if (rule.clear_threshold != null) lines.push({ value: rule.clear_threshold, label: `${rule.name} clears`, dashed: true });
      } else if (rule.max_degradation_percentage != null && baseline != null) {
        const sign = direction === "lower_is_better" ? 1 : -1;
        lines.push({ value: baseline * (1 + (sign * rule.max_degradation_percentage) / 100), label: `${rule.name} (−${rule.max_degradation_percentage} % of baseline)` });
      }
    }
    const summary = (history?.metric_summaries ?? []).find((s: any) => s.metric === metric);
    // The band: the baseline ± one standard deviation of the week's values.
    const band: [number, number] | null = baseline != null && summary?.std != null ? [baseline - summary.std, baseline + summary.std] : null;
    if (baseline != null) lines.push({ value: baseline, label: "baseline", dashed: true, color: cssVar("--muted") });
    if (metric === COVERAGE && computed() && minCoverage != null) lines.push({ value: minCoverage, label: `judged from ${percent(minCoverage)} labelled`, dashed: true });
    const markers: Marker[] = [];
    // An alert's markers link to its page; alerts of other datasets are not this chart's.
    for (const alert of alerts.filter((a: any) => a.metric === metric && (a.dataset ?? "default") === (dataset || "default"))) {
      const href = `#/alerts/${enc(alert.id)}`;
      markers.push({ at: Date.parse(alert.first_seen) / 1000, kind: "fired", label: `alert: ${alert.message}`, severity: alert.severity, href });
      if (alert.resolved_at) markers.push({ at: Date.parse(alert.resolved_at) / 1000, kind: "resolved", label: `resolved: ${alert.rule_name}${alert.resolved_by ? `, by ${alert.resolved_by}` : ""}`, href });
    }
    return { band, lines, markers };
  }

  function renderDegradation(error: Error | null) {
    const headers = ["Metric", "Current", "Baseline", "Change", "Severity", "p-value", "Trend", "Recommendation"];
    const rowsOut = degradation.map((d: any) => h("tr", null, ...labelled(headers, [
      h("th", { scope: "row" }, d.metric),
      h("td", { class: "num" }, num(d.current_value)), h("td", { class: "num" }, num(d.baseline_value)),
      h("td", { class: "num" }, pct(d.percentage_change)),
      h("td", null, d.is_degraded ? badge(d.severity) : h("span", { class: "muted" }, d.status ?? "ok")),
      h("td", { class: "num p-value", title: d.p_value == null ? undefined : `p = ${d.p_value}` }, d.p_value == null ? "—" : pValue(d.p_value)),
      h("td", null, trendWord((history?.metric_summaries ?? []).find((s: any) => s.metric === d.metric)?.trend)),
      h("td", { class: "prose" }, d.recommendation ?? "")])));
    clear(degradationBox,
      h("h2", { id: "deg-h" }, "Degradation"),
      history ? h("p", null, "Health: ", badge(`grade-${history.overall_health}`, history.overall_health), " ", trendWord(history.health_trend),
        history.health_reasons?.length ? h("span", { class: "muted" }, ` — ${history.health_reasons.join("; ")}`) : null) : null,
      error ? h("p", { class: "error" }, `The degradation check could not run: ${error.message}`)
        : rowsOut.length === 0 ? h("p", { class: "empty" }, "No degradation results for this version yet.")
        : h("div", { class: "scroll" }, h("table", { class: "grid cards" },
          h("thead", null, h("tr", null, ...headers.map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", null, rowsOut))));
  }

  const unsubscribe = onLive((event) => {
    if (event.type === "samples" && event.data.model === model && event.data.version === version && (event.data.dataset ?? "default") === dataset) {
      const chart = charts.get(event.data.metric);
      const at = Date.parse(event.data.last_timestamp) / 1000;
      if (chart) {
        appendPoint(chart, 1, at, event.data.last_value);
        // For people (a flash) and for the browser tests (a counter).
        const figure = chartsBox.querySelector<HTMLElement>(`figure[data-metric="${event.data.metric}"]`);
        if (figure) { figure.dataset.live = String(Number(figure.dataset.live ?? 0) + event.data.count); figure.classList.remove("flash"); void figure.offsetWidth; figure.classList.add("flash"); }
      }
      else if (!metrics.includes(event.data.metric)) { metrics.push(event.data.metric); void draw(); }
    } else if (event.type !== "samples" && event.data?.alert?.model === model) {
      const alert = event.data.alert;
      alerts = alerts.filter((a) => a.id !== alert.id).concat(alert);
      const chart = charts.get(alert.metric);
      (chart as any)?.setOverlays(overlaysFor(alert.metric));
    }
  });

  /**
   * How complete the newest point is. A computed window gets points only once judged:
   * when its coverage reached the model's minimum, or, below it, when its label delay ran
   * out; labels arriving later still revise it.
   */
  function completeness(xs: number[], [cx, cy]: [number[], (number | null)[]]): string {
    const newest = xs[xs.length - 1];
    const at = cx.lastIndexOf(newest);
    const share = at < 0 ? null : cy[at];
    if (share == null) return "";
    const below = minCoverage != null && share < minCoverage;
    return `; newest point ${percent(share)} labelled${below ? ` (under the ${percent(minCoverage!)} minimum: judged when its label delay ran out)` : ""}`;
  }

  void start();
  return () => { gone = true; unsubscribe(); for (const chart of charts.values()) destroyChart(chart); };
}

/** The dataset computed metrics are written to, and their coverage metric (issue 22). */
const COMPUTED_DATASET = "predictions";
const COVERAGE = "label_coverage";

function percent(share: number): string {
  return `${Math.round(share * 1000) / 10} %`;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

function trendWord(trend: string | undefined): HTMLElement | string {
  if (!trend) return "—";
  const arrow = trend === "improving" ? "↗" : trend === "degrading" ? "↘" : "→";
  return h("span", { class: `trend t-${trend}` }, `${arrow} ${trend}`);
}

function localInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}
void time;
