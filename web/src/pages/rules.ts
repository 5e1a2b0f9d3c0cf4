// Rules: list, create (threshold, degradation, change point or no data, with anti-flap options), edit,
// enable/disable and delete, and a backtest preview drawn on the metric's chart before
// saving (POST /rules/backtest runs the same state machine over stored data).
import { api, list, enc, seriesPath, columns, ranges, type Series } from "../api";
import { metricChart, destroyChart, type Marker } from "../charts";
import { h, clear, num, labelled, markReady } from "../util";
import { canWrite } from "../session";
import type uPlot from "uplot";

const OPERATORS = ["lt", "lte", "gt", "gte", "eq"];
const HEADERS = ["Name", "Applies to", "Condition", "Severity", "Anti-flap", "Enabled", "Actions"];
/** How the preview's markers name the backtest's events. */
const PREVIEW_EVENTS: Record<string, string> = { fired: "would fire", auto_resolved: "would resolve itself", condition_cleared: "condition would clear", shifted: "another shift (alert updated)" };
const METRICS = ["accuracy", "precision", "recall", "f1_score", "auc_roc", "auc_pr", "mae", "mse", "rmse", "r2_score", "mape", "latency", "throughput", "error_rate"];

export function rulesPage(main: HTMLElement): () => void {
  const message = h("div", { role: "status", "aria-live": "polite" });
  const tbody = h("tbody");
  const editor = h("section", { class: "card needs-write", "aria-labelledby": "rule-h" });
  clear(main, h("h1", null, "Rules"),
    h("p", { class: "read-only-note muted" }, "Signed in with a read token: you can look, not act. Sign in with a write token to create or change rules."),
    message,
    h("div", { class: "scroll" }, h("table", { class: "grid rules cards" },
      h("thead", null, h("tr", null, ...HEADERS.map((c) => h("th", { scope: "col" }, c)))),
      tbody)),
    editor);
  let preview: uPlot | null = null;
  let models: any[] = [];
  /** The configured notification channels (GET /channels); null when they could not be read. */
  let channels: any[] | null = [];

  async function load() {
    try {
      const rules = list(await api("/rules"), "rules");
      if (rules.length === 0) { clear(tbody, h("tr", null, h("td", { colspan: HEADERS.length, class: "empty" }, "No rules yet. Create one below."))); return; }
      clear(tbody, rules.map((rule: any) => h("tr", { "data-rule": rule.id }, ...labelled(HEADERS, [
        h("td", null, h("strong", null, rule.name)),
        h("td", null, `${rule.model} · ${rule.version ?? "all versions"} · ${rule.metric}${datasetWords(rule.dataset)}`,
          h("div", { class: "muted small notifies" }, rule.notify_channels?.length ? `notifies ${rule.notify_channels.join(", ")}` : "notifies no one")),
        h("td", null, describe(rule)),
        h("td", null, h("span", { class: `badge b-${rule.severity}` }, rule.severity)),
        h("td", { class: "small" }, `fires after ${rule.for_evaluations ?? "?"}, clears after ${rule.clear_after_evaluations ?? "?"}${rule.auto_resolve ? ", auto-resolves" : ""}; cooldown ${rule.cooldown_minutes} min`),
        h("td", null, h("input", { type: "checkbox", checked: rule.enabled, disabled: !canWrite(), "aria-label": `${rule.name} enabled`, onchange: async (e: Event) => {
          const enabled = (e.target as HTMLInputElement).checked;
          try { await patch(rule.id, { enabled }); say("ok", `${rule.name} ${enabled ? "enabled" : "disabled"}.`); }
          catch (error) { say("error", `Could not change ${rule.name}: ${(error as Error).message}`); (e.target as HTMLInputElement).checked = !enabled; }
        } })),
        h("td", { class: "actions" },
          h("button", { type: "button", class: "needs-write", onclick: () => edit(rule) }, "Edit"),
          h("button", { type: "button", class: "danger needs-write", onclick: async () => {
            if (!confirm(`Delete the rule “${rule.name}”? Its alerts stay in the history.`)) return;
            try { await api(`/rules/${enc(rule.id)}`, { method: "DELETE" }); say("ok", `Deleted ${rule.name}.`); await load(); }
            catch (error) { say("error", `Could not delete: ${(error as Error).message}`); }
          } }, "Delete"))]))));
    } catch (error) {
      clear(tbody, h("tr", null, h("td", { colspan: HEADERS.length, class: "error" }, `Cannot list rules: ${(error as Error).message}`)));
    }
  }

  function say(kind: "ok" | "error", text: string) { clear(message, h("p", { class: kind }, text)); }

  async function patch(id: string, body: any) {
    try { return await api(`/rules/${enc(id)}`, { method: "PATCH", json: body }); }
    catch (error) { if ((error as any).status === 405) return api(`/rules/${enc(id)}`, { method: "PUT", json: body }); throw error; }
  }

  function field(label: string, input: HTMLElement, hint?: string) {
    return h("label", { class: "field" }, h("span", null, label), input, hint ? h("small", { class: "muted" }, hint) : null);
  }

  function edit(rule: any | null) {
    const f = {
      name: h("input", { name: "name", required: true, value: rule?.name ?? "" }),
      model: h("input", { name: "model", required: true, list: "models-list", value: rule?.model ?? "" }),
      version: h("input", { name: "version", placeholder: "all versions", value: rule?.version ?? "" }),
      dataset: h("input", { name: "dataset", list: "datasets-list", placeholder: "default", value: rule?.dataset ?? "default" }),
      metric: h("input", { name: "metric", required: true, list: "metrics-list", value: rule?.metric ?? "accuracy" }),
      kind: h("select", { name: "kind" }, h("option", { value: "threshold" }, "threshold"), h("option", { value: "degradation", selected: rule?.condition_type === "degradation" }, "degradation"),
        h("option", { value: "change_point", selected: rule?.condition_type === "change_point" }, "change point"),
        h("option", { value: "no_data", selected: rule?.condition_type === "no_data" }, "no data")),
      noDataMinutes: h("input", { name: "no_data_minutes", type: "number", step: "any", min: 0, placeholder: "e.g. 30", value: rule?.no_data_minutes ?? (rule ? "" : 30) }),
      noDataIntervals: h("input", { name: "no_data_intervals", type: "number", step: "any", min: 1, placeholder: "e.g. 5", value: rule?.no_data_intervals ?? "" }),
      changeDirection: h("select", { name: "change_direction" }, h("option", { value: "worse" }, "worse only"), h("option", { value: "both", selected: rule?.change_direction === "both" }, "either way")),
      minShift: h("input", { name: "min_shift", type: "number", step: "any", min: 0, value: rule?.min_shift_percentage ?? rule?.min_shift_sd ?? 1 }),
      minShiftUnit: h("select", { name: "min_shift_unit" }, h("option", { value: "sd" }, "noise sd"), h("option", { value: "percent", selected: rule?.min_shift_percentage != null }, "%")),
      falseAlarm: h("input", { name: "false_alarm", type: "number", step: "any", min: 0, value: rule?.false_alarm_interval_hours ?? rule?.false_alarm_interval_samples ?? "", placeholder: "default: 90 days, ≥ 1000 samples" }),
      falseAlarmUnit: h("select", { name: "false_alarm_unit" }, h("option", { value: "samples" }, "samples"), h("option", { value: "hours", selected: rule?.false_alarm_interval_hours != null }, "hours")),
      operator: h("select", { name: "operator" }, ...OPERATORS.map((o) => h("option", { value: o, selected: (rule?.comparison_operator ?? "lt") === o }, o))),
      threshold: h("input", { name: "threshold", type: "number", step: "any", value: rule?.threshold_value ?? "" }),
      clearThreshold: h("input", { name: "clear_threshold", type: "number", step: "any", value: rule?.clear_threshold ?? "" }),
      maxPct: h("input", { name: "max_pct", type: "number", step: "any", min: 0, value: rule?.max_degradation_percentage ?? 5 }),
      baselineHours: h("input", { name: "baseline_hours", type: "number", min: 1, value: rule?.baseline_window_hours ?? 168 }),
      clearPct: h("input", { name: "clear_pct", type: "number", step: "any", min: 0, value: rule?.clear_percentage ?? "" }),
      severity: h("select", { name: "severity" }, ...["low", "medium", "high", "critical"].map((s) => h("option", { value: s, selected: (rule?.severity ?? "medium") === s }, s))),
      cooldown: h("input", { name: "cooldown", type: "number", min: 0, value: rule?.cooldown_minutes ?? 60 }),
      forEvals: h("input", { name: "for", type: "number", min: 1, value: rule?.for_evaluations ?? 3 }),
      clearEvals: h("input", { name: "clear_after", type: "number", min: 1, value: rule?.clear_after_evaluations ?? 3 }),
      autoResolve: h("input", { name: "auto_resolve", type: "checkbox", checked: rule?.auto_resolve ?? false }),
      enabled: h("input", { name: "enabled", type: "checkbox", checked: rule?.enabled ?? true }),
    };
    const thresholdBox = h("fieldset", null, h("legend", null, "Threshold"), field("Fires when the value is", f.operator), field("Threshold", f.threshold), field("Clears past (optional)", f.clearThreshold, "hysteresis"));
    const degradationBox = h("fieldset", null, h("legend", null, "Degradation"), field("Worse than (%)", f.maxPct), field("Baseline window (hours)", f.baselineHours), field("Clears at or under (%, optional)", f.clearPct));
    const changePointBox = h("fieldset", null, h("legend", null, "Change point"),
      field("Shifts that count", f.changeDirection, "worse: in the metric's bad direction"),
      field("Smallest shift worth knowing", h("span", { class: "pair" }, f.minShift, f.minShiftUnit), "in the series' own noise or in % of its level"),
      field("One false alarm every", h("span", { class: "pair" }, f.falseAlarm, f.falseAlarmUnit), "on average, on a series without changes"));
    const noDataBox = h("fieldset", null, h("legend", null, "No data"),
      field("Silent for longer than (minutes)", f.noDataMinutes, "empty: no fixed limit"),
      field("Silent for longer than this many usual intervals", f.noDataIntervals, "a usual interval is the median gap of its recent samples (the limit is never under a minute); with both limits, the silence must exceed both"));
    let lastKind = f.kind.value;
    const showKind = () => {
      thresholdBox.hidden = f.kind.value !== "threshold"; degradationBox.hidden = f.kind.value !== "degradation"; changePointBox.hidden = f.kind.value !== "change_point";
      noDataBox.hidden = f.kind.value !== "no_data";
      // A change-point rule fires at the sample that completes the evidence, a no-data rule
      // when the silence reaches its limit: never later.
      const once = f.kind.value === "change_point" || f.kind.value === "no_data";
      f.forEvals.disabled = once;
      if (once) f.forEvals.value = "1";
      // A no-data alert is over when data returns: it resolves itself at the first sample back.
      if (f.kind.value === "no_data" && lastKind !== "no_data" && !rule) { f.clearEvals.value = "1"; f.autoResolve.checked = true; }
      lastKind = f.kind.value;
    };
    f.kind.addEventListener("change", showKind);
    showKind();
    const notifyBox = channelsField(rule);
    const chartBox = h("div", { class: "chart" });
    const previewNote = h("p", { class: "muted", role: "status" });
    const formError = h("div", { role: "alert" });

    const spec = (): any => {
      const s: any = {
        name: f.name.value.trim(), model: f.model.value.trim(), metric: f.metric.value.trim(), severity: f.severity.value,
        enabled: f.enabled.checked, cooldown_minutes: Number(f.cooldown.value),
        for_evaluations: Number(f.forEvals.value), clear_after_evaluations: Number(f.clearEvals.value), auto_resolve: f.autoResolve.checked,
      };
      s.version = f.version.value.trim() || null;
      s.dataset = f.dataset.value.trim() || "default";
      s.notify_channels = [...notifyBox.querySelectorAll<HTMLInputElement>("input[name=notify_channel]:checked")].map((c) => c.value);
      if (f.kind.value === "threshold") {
        s.comparison_operator = f.operator.value; s.threshold_value = Number(f.threshold.value);
        if (f.clearThreshold.value !== "") s.clear_threshold = Number(f.clearThreshold.value);
      } else if (f.kind.value === "no_data") {
        s.condition_type = "no_data"; s.for_evaluations = 1;
        if (f.noDataMinutes.value !== "") s.no_data_minutes = Number(f.noDataMinutes.value);
        if (f.noDataIntervals.value !== "") s.no_data_intervals = Number(f.noDataIntervals.value);
      } else if (f.kind.value === "change_point") {
        s.condition_type = "change_point"; s.change_direction = f.changeDirection.value; s.for_evaluations = 1;
        if (f.minShiftUnit.value === "percent") s.min_shift_percentage = Number(f.minShift.value); else s.min_shift_sd = Number(f.minShift.value);
        // Empty: the detector's default, which depends on the series' sampling.
        if (f.falseAlarm.value === "") { /* default */ }
        else if (f.falseAlarmUnit.value === "hours") s.false_alarm_interval_hours = Number(f.falseAlarm.value);
        else s.false_alarm_interval_samples = Math.round(Number(f.falseAlarm.value));
      } else {
        s.max_degradation_percentage = Number(f.maxPct.value); s.baseline_window_hours = Number(f.baselineHours.value);
        if (f.clearPct.value !== "") s.clear_percentage = Number(f.clearPct.value);
      }
      return s;
    };

    const runPreview = async () => {
      const s = spec();
      const version = s.version ?? (models.find((m) => m.model === s.model)?.versions ?? []).slice(-1)[0];
      if (!s.model || !s.metric || !version) { previewNote.textContent = "Pick a model (and version) with data to preview."; return; }
      const to = Date.now(), from = to - 7 * 86400e3;
      // A rule for each dataset is previewed on the default one.
      const dataset = s.dataset === "*" ? "default" : s.dataset;
      previewNote.textContent = "Running the backtest…";
      try {
        // The server replays the unsaved rule with the live evaluator's state machine.
        // A rule on every metric (*) has no one series to draw: only its events are told.
        const whole = s.metric === "*";
        const [series, report] = await Promise.all([
          whole ? Promise.resolve(null) : api<Series>(`${seriesPath(s.model, version, s.metric)}?from=${from}&to=${to}&max_points=1000&dataset=${enc(dataset)}`),
          api(`/rules/backtest?from=${from}&to=${to}`, { method: "POST", json: { ...s, version, dataset } }),
        ]);
        const events: any[] = (report?.versions ?? []).find((v: any) => v.version === version && (v.dataset ?? "default") === dataset)?.events ?? [];
        const markers: Marker[] = events.filter((e) => PREVIEW_EVENTS[e.event] !== undefined)
          .map((e) => ({ at: Date.parse(e.at) / 1000, kind: e.event === "fired" || e.event === "shifted" ? "fired" : "resolved", label: PREVIEW_EVENTS[e.event], severity: e.event === "fired" || e.event === "shifted" ? s.severity : undefined }));
        const fired = events.filter((e) => e.event === "fired").length;
        if (preview) destroyChart(preview);
        preview = null;
        clear(chartBox);
        if (whole || !series) {
          const when = events.filter((e) => e.event === "fired").map((e) => new Date(e.at).toLocaleString()).join(", ");
          previewNote.textContent = `Over the last 7 days of ${s.model} ${version}${datasetWords(dataset)} (every metric) this rule would have fired ${fired} time${fired === 1 ? "" : "s"}${when ? `: ${when}` : ""}.`;
          return;
        }
        const [xs, ys] = columns(series);
        // With the min–max band, a threshold crossed only inside a bucket still shows where it fired.
        preview = metricChart(chartBox, [{ label: `${s.metric} ${version}`, xs, ys, ...ranges(series) }],
          { lines: s.threshold_value != null && Number.isFinite(s.threshold_value) ? [{ value: s.threshold_value, label: `threshold ${num(s.threshold_value)}` }] : [], markers },
          { timeWindow: [from, to] });
        previewNote.textContent = `Over the last 7 days of ${s.model} ${version}${datasetWords(dataset)} this rule would have fired ${fired} time${fired === 1 ? "" : "s"}.`;
      } catch (error) {
        previewNote.textContent = `No preview: ${(error as Error).message}`;
      }
    };

    const form = h("form", { class: "rule-form", novalidate: false },
      h("div", { class: "fields" }, field("Name", f.name), field("Model", f.model), field("Version", f.version, "empty: every version"),
        field("Dataset", f.dataset, "default, a dataset's name, or * for each dataset separately"), field("Metric", f.metric, "a metric, or * (no-data rules only) for the whole version: silent only when none of its metrics reports"),
        field("Kind", f.kind), field("Severity", f.severity)),
      thresholdBox, degradationBox, changePointBox, noDataBox,
      h("fieldset", null, h("legend", null, "Anti-flap"), field("Breaching evaluations before firing", f.forEvals), field("Clear evaluations before clearing", f.clearEvals),
        field("Cooldown (minutes)", f.cooldown), h("label", { class: "check" }, f.autoResolve, " resolve automatically once clear"), h("label", { class: "check" }, f.enabled, " enabled")),
      notifyBox,
      formError,
      h("div", { class: "buttons" },
        h("button", { type: "button", onclick: runPreview }, "Preview (backtest)"),
        h("button", { type: "submit", class: "primary" }, rule ? "Save changes" : "Create rule"),
        rule ? h("button", { type: "button", class: "ghost", onclick: () => edit(null) }, "Cancel") : null),
      previewNote, chartBox,
      h("datalist", { id: "models-list" }, models.map((m) => h("option", { value: m.model }))),
      h("datalist", { id: "datasets-list" }, [...new Set(["default", "*", ...models.flatMap((m) => m.datasets ?? [])])].map((d) => h("option", { value: d }))),
      h("datalist", { id: "metrics-list" }, ["*", ...METRICS].map((m) => h("option", { value: m }))));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clear(formError);
      try {
        if (rule) await patch(rule.id, spec());
        else await api("/rules", { method: "POST", json: spec() });
        say("ok", `${rule ? "Saved" : "Created"} ${f.name.value.trim()}.`);
        await load();
        edit(null);
      } catch (error) {
        clear(formError, h("p", { class: "error" }, `Not saved: ${(error as Error).message}`));
      }
    });
    if (preview) { destroyChart(preview); preview = null; }
    clear(editor, h("h2", { id: "rule-h" }, rule ? `Edit “${rule.name}”` : "New rule"), form);
    if (rule) f.name.focus();
  }

  /**
   * A checkbox per configured channel, ticked for those the rule notifies. A channel the
   * rule names but the configuration no longer has stays listed (and ticked), marked as
   * such: saving then says so instead of dropping it silently.
   */
  function channelsField(rule: any | null): HTMLElement {
    const chosen: string[] = rule?.notify_channels ?? [];
    const configured = channels ?? [];
    const names = [...configured.map((c: any) => c.name), ...chosen.filter((n) => !configured.some((c: any) => c.name === n))];
    const box = h("fieldset", { class: "notify-channels" }, h("legend", null, "Notify"));
    if (channels === null) box.append(h("p", { class: "error small" }, "Cannot read the configured channels."));
    if (names.length === 0) {
      box.append(h("p", { class: "muted small" }, "No channels are configured: this rule's alerts will notify no one. ",
        h("a", { href: "#/channels" }, "Channels"), " says how to add one."));
      return box;
    }
    for (const name of names) {
      const channel = configured.find((c: any) => c.name === name);
      box.append(h("label", { class: "check" },
        h("input", { type: "checkbox", name: "notify_channel", value: name, checked: chosen.includes(name) }),
        ` ${name}`, h("span", { class: channel ? "muted small" : "error-inline small" }, channel ? ` (${channel.kind})` : " (not configured)")));
    }
    return box;
  }

  void Promise.all([
    api("/models").then((data) => { models = list(data, "models"); }).catch(() => undefined),
    api("/channels").then((data) => { channels = list(data, "channels"); }).catch(() => { channels = null; }),
  ]).then(() => edit(null));
  let gone = false;
  void load().finally(() => { if (!gone) markReady(main); });
  return () => { gone = true; if (preview) destroyChart(preview); };
}

/** " · on dataset canary", " · on each dataset", or nothing for the default dataset. */
function datasetWords(dataset: string | undefined): string {
  if (!dataset || dataset === "default") return "";
  return dataset === "*" ? " · on each dataset" : ` · on dataset ${dataset}`;
}

function describe(rule: any): string {
  if (rule.condition_type === "no_data") {
    const limits = [rule.no_data_minutes != null ? `${num(rule.no_data_minutes)} min` : null,
      rule.no_data_intervals != null ? `${num(rule.no_data_intervals)} usual intervals` : null].filter(Boolean);
    return `no data for ${limits.join(" and ")}`;
  }
  if (rule.condition_type === "change_point") {
    const shift = rule.min_shift_percentage != null ? `${num(rule.min_shift_percentage)} %` : `${num(rule.min_shift_sd)} sd`;
    const every = rule.false_alarm_interval_hours != null ? `${num(rule.false_alarm_interval_hours)} h`
      : rule.false_alarm_interval_samples != null ? `${num(rule.false_alarm_interval_samples)} samples` : "90 days (at least 1000 samples)";
    return `level shift ≥ ${shift} ${rule.change_direction === "both" ? "either way" : "for the worse"}, a false alarm per ${every}`;
  }
  if (rule.condition_type === "degradation" || rule.max_degradation_percentage != null) {
    return `worse than ${rule.max_degradation_percentage} % vs the last ${rule.baseline_window_hours} h${rule.clear_percentage != null ? `, clears ≤ ${rule.clear_percentage} %` : ""}`;
  }
  return `value ${rule.comparison_operator} ${num(rule.threshold_value)}${rule.clear_threshold != null ? `, clears past ${num(rule.clear_threshold)}` : ""}`;
}
