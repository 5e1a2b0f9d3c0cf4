// One alert (`#/alerts/ID`, where every notification's "Open in modelwatch" link lands):
// what fired it and its figures, the metric's chart around it with its moments marked,
// its whole history, the notifications sent about it, and the actions of whoever is on
// call (acknowledge, resolve with notes, silence). A read token sees it all and acts on
// nothing (session.ts); an id no alert has gets a page saying so.
import { api, ApiError, list, enc, seriesPath, columns, ranges, isOpen, type Series } from "../api";
import { metricChart, destroyChart, type Marker, type Line } from "../charts";
import { onLive } from "../live";
import { h, clear, time, counted, num, pct, pValue, badge, alertValue, markReady } from "../util";
import { whoField } from "./alerts";
import type uPlot from "uplot";

const HOUR = 3600e3;

export function alertPage(main: HTMLElement, [id]: string[]): () => void {
  let gone = false;
  let chart: uPlot | null = null;
  let shown = "";
  const who = whoField();
  const message = h("div", { role: "status", "aria-live": "polite" });
  const notes = h("input", { type: "text", id: "resolve-notes", placeholder: "what was done", size: 36 });
  const silenceFor = h("select", { id: "silence-for" }, ...[["60", "1 hour"], ["240", "4 hours"], ["1440", "1 day"], ["10080", "1 week"]].map(([v, t]) => h("option", { value: v }, t)));
  const silenceComment = h("input", { type: "text", id: "silence-comment", placeholder: "why (required)", size: 30 });

  async function load(): Promise<void> {
    let alert: any;
    try {
      alert = await api(`/alerts/${enc(id)}`);
    } catch (error) {
      if (gone) return;
      // A malformed id (400) is as unknown as a well-formed one no alert has (404).
      if (error instanceof ApiError && (error.status === 404 || error.status === 400)) noSuchAlert();
      else clear(main, h("h1", null, "Alert"), h("p", { class: "error" }, `Cannot load the alert: ${(error as Error).message}`));
      markReady(main);
      return;
    }
    if (gone) return;
    alert = alert?.alert ?? alert;
    // A live event for this alert reloads it; an answer identical to the page changes nothing.
    const json = JSON.stringify(alert);
    if (json === shown) return;
    shown = json;
    const [rule, history, silences, deliveries] = await Promise.all([
      api(`/rules/${enc(alert.rule_id)}`).catch(() => null),
      api(`/alerts/${enc(alert.id)}/history`).then((d) => list(d, "history")).catch((e: Error) => e),
      api("/silences").then((d) => list(d, "silences")).catch(() => []),
      api(`/notifications?alert_id=${enc(alert.id)}`).then((d) => list(d, "notifications")).catch(() => null),
    ]);
    if (gone) return;
    render(alert, rule, history, silences, deliveries);
    await drawChart(alert, rule);
    if (!gone) requestAnimationFrame(() => markReady(main));
  }

  function noSuchAlert() {
    if (chart) { destroyChart(chart); chart = null; }
    clear(main, h("h1", null, "No such alert"),
      h("p", { class: "empty no-such-alert" }, "modelwatch has no alert ", h("code", null, id),
        ". It may have been removed by retention, or the link is mistyped."),
      h("p", null, h("a", { href: "#/alerts?status=" }, "See every alert")));
  }

  function render(alert: any, rule: any, history: any[] | Error, silences: any[], deliveries: any[] | null) {
    const open = isOpen(alert);
    const now = Date.now();
    const silence = silences.find((s: any) => s.model === alert.model && (!s.version || s.version === alert.version)
      && (!s.metric || s.metric === alert.metric) && Date.parse(s.starts_at) <= now && Date.parse(s.ends_at) > now);
    const act = async (action: "acknowledge" | "resolve") => {
      const user = signedBy();
      if (!user) return;
      try {
        const body: any = { by: user };
        if (action === "resolve" && notes.value.trim()) body.notes = notes.value.trim();
        await api(`/alerts/${enc(alert.id)}/${action}`, { method: "POST", json: body });
        if (action === "resolve") notes.value = "";
        say("ok", `${action === "acknowledge" ? "Acknowledged" : "Resolved"}.`);
        await load();
      } catch (error) {
        say("error", `Could not ${action}: ${(error as Error).message}`);
      }
    };
    const silenceIt = async (event: Event) => {
      event.preventDefault();
      const user = signedBy();
      if (!user) return;
      if (!silenceComment.value.trim()) { say("error", "Say why you silence it (comment)."); silenceComment.focus(); return; }
      try {
        const created: any = await api("/silences", { method: "POST", json: {
          model: alert.model, version: alert.version, metric: alert.metric,
          duration_minutes: Number(silenceFor.value), comment: silenceComment.value.trim(), created_by: user } });
        silenceComment.value = "";
        say("ok", `Silenced ${alert.metric} of ${alert.model} ${alert.version} until ${new Date(created.ends_at).toLocaleString()}.`);
        shown = "";
        await load();
      } catch (error) {
        say("error", `Could not silence: ${(error as Error).message}`);
      }
    };
    const t = alert.trigger ?? {};
    const figures: [string, unknown][] = [
      [valueLabel(t.condition_type), h("span", { class: "alert-value" }, alertValue(alert))],
      ["Worst", alertValue(alert, alert.worst_value)],
    ];
    if (t.condition_type === "degradation") {
      figures.push(["Current", num(t.current_value)], ["Baseline", num(t.baseline_value)],
        ["Change", pct(t.baseline_value ? (100 * (t.current_value - t.baseline_value)) / Math.abs(t.baseline_value) : null)]);
      if (t.test) {
        figures.push(["p-value", h("span", { class: "p-value", title: t.test.p_value == null ? "the test gave no finite p-value" : `p = ${t.test.p_value}` },
          t.test.p_value == null ? "not computed" : pValue(t.test.p_value))], ["Test", `${t.test.method}, α ${t.test.alpha}`]);
      } else {
        figures.push(["p-value", h("span", { class: "p-value muted" }, "not recorded")]);
      }
    } else if (t.condition_type === "change_point") {
      figures.push(["Change began", time(t.change_started_at)], ["Level before", num(t.level_before)], ["Level after", num(t.level_after)],
        ["Shift", `${num(t.shift)}${t.shift_percentage != null ? ` (${pct(t.shift_percentage)})` : ""}`],
        ["p-value", h("span", { class: "p-value", title: "a change-point rule's CUSUM crossed the line its false-alarm interval sets: no p-value" }, "—")]);
    } else if (t.condition_type === "no_data") {
      figures.push(["Last sample", time(t.last_sample_at)], ["Limit", `${num(t.limit_minutes)} min`],
        ["Usual interval", t.usual_interval_minutes != null ? `${num(t.usual_interval_minutes)} min` : "not known yet"],
        ["p-value", h("span", { class: "p-value", title: "a no-data rule measures a silence: no statistical test" }, "—")]);
    } else if (t.condition_type === "threshold") {
      figures.push(["Threshold", `${t.comparison_operator} ${num(t.threshold_value)}`],
        ["p-value", h("span", { class: "p-value", title: "a threshold rule compares a value with a line: no statistical test" }, "—")]);
    }
    figures.push(["Occurrences", String(alert.occurrences)], ["First seen", time(alert.first_seen)], ["Last seen", time(alert.last_seen)]);
    if (alert.acknowledged_at) figures.push(["Acknowledged", [time(alert.acknowledged_at), ` by ${alert.acknowledged_by}`]]);
    if (alert.resolved_at) figures.push(["Resolved", [time(alert.resolved_at), ` by ${alert.resolved_by}`]]);
    if (alert.resolution_notes) figures.push(["Notes", `“${alert.resolution_notes}”`]);
    if (alert.hold_reason?.reason) figures.push(["Not notified", String(alert.hold_reason.reason).replaceAll("_", " ")]);

    const chartBox = h("div", { class: "chart" });
    clear(main,
      h("p", { class: "crumbs" }, h("a", { href: "#/alerts" }, "Alerts"), " › ", h("code", null, alert.id)),
      h("h1", null, alert.rule_name, " ", badge(alert.severity), badge(`s-${alert.status}`, alert.status)),
      h("p", { class: "alert-message" }, alert.message),
      h("p", { class: "read-only-note muted" }, "Signed in with a read token: you can look, not act. Sign in with a write token to acknowledge, resolve or silence."),
      message,
      open ? h("section", { class: "card alert-actions needs-write", "aria-labelledby": "act-h" },
        h("h2", { id: "act-h" }, "Act"),
        h("div", { class: "toolbar" },
          h("label", { class: "who" }, "You are ", who),
          alert.status !== "acknowledged" ? h("button", { type: "button", onclick: () => act("acknowledge") }, "Acknowledge") : null),
        h("div", { class: "toolbar" },
          h("label", { for: "resolve-notes" }, "Resolution notes"), notes,
          h("button", { type: "button", onclick: () => act("resolve") }, "Resolve")),
        silence
          ? h("p", { class: "muted silenced" }, "Silenced until ", time(silence.ends_at), ` by ${silence.created_by}: “${silence.comment}”`)
          : h("form", { class: "toolbar silence-form", onsubmit: silenceIt },
            h("label", { for: "silence-for" }, "Silence this metric for"), silenceFor,
            h("label", { for: "silence-comment", class: "sr-only" }, "Why"), silenceComment,
            h("button", { type: "submit" }, "Silence"))) : null,
      h("div", { class: "alert-layout" },
        h("section", { class: "card", "aria-labelledby": "trigger-h" },
          h("h2", { id: "trigger-h" }, "Trigger"),
          h("dl", { class: "facts" },
            h("dt", null, "Rule"), h("dd", null, alert.rule_name, " ", h("code", { class: "small" }, alert.rule_id), rule ? null : h("span", { class: "muted" }, " (deleted since)")),
            h("dt", null, "Condition"), h("dd", { class: "condition" }, condition(alert, rule)),
            h("dt", null, "Series"), h("dd", null, h("a", { href: `#/model/${enc(alert.model)}/${enc(alert.version)}${alert.dataset ? `?dataset=${enc(alert.dataset)}` : ""}` }, `${alert.model} ${alert.version}`), ` · ${alert.metric}`, alert.dataset ? ` · dataset ${alert.dataset}` : ""),
            figures.map(([name, value]) => [h("dt", null, name), h("dd", { "data-figure": name }, value as any)]))),
        h("figure", { class: "card alert-chart", "data-metric": alert.metric },
          h("figcaption", null, h("strong", null, alert.metric), h("span", { class: "muted small chart-caption" })),
          chartBox)),
      h("section", { "aria-labelledby": "history-h" },
        h("h2", { id: "history-h" }, "History"),
        history instanceof Error ? h("p", { class: "error" }, `Cannot load the history: ${history.message}`)
          : history.length === 0 ? h("p", { class: "empty" }, "No history.")
          : h("ol", { class: "timeline alert-history" }, history.map((tr: any) => h("li", { "data-to": tr.to },
            time(tr.at), " ", h("strong", null, `${tr.from ?? "new"} → ${tr.to}`), tr.by ? ` by ${tr.by}` : "",
            tr.notes ? h("span", { class: "muted" }, ` — ${tr.notes}`) : null)))),
      deliveries ? h("section", { "aria-labelledby": "sent-h" },
        h("h2", { id: "sent-h" }, "Notifications"),
        deliveries.length === 0 ? h("p", { class: "muted" }, "None sent about this alert.")
          : h("ul", { class: "deliveries" }, deliveries.map((d: any) => h("li", null,
            h("a", { href: `#/channels?channel=${enc(d.channel)}` }, d.channel), ` · ${d.event} · `, badge(`d-${d.status}`, d.status), " ",
            time(d.delivered_at ?? d.finished_at ?? d.created_at), d.last_error ? h("span", { class: "error-inline" }, ` — ${d.last_error}`) : null)))) : null);
  }

  function signedBy(): string | null {
    const user = who.value.trim();
    if (!user) { say("error", "Enter your name or e-mail in “You are” first."); who.focus(); return null; }
    localStorage.setItem("modelwatch.user", user);
    return user;
  }

  function say(kind: "ok" | "error", text: string) { clear(message, h("p", { class: kind }, text)); }

  /** The metric around the alert: from before it fired to after it ended (or now). */
  async function drawChart(alert: any, rule: any) {
    const box = main.querySelector<HTMLElement>(".alert-chart .chart");
    const caption = main.querySelector<HTMLElement>(".chart-caption");
    if (!box) return;
    const start = Date.parse(alert.trigger?.change_started_at ?? alert.first_seen);
    const end = Math.max(...[alert.last_seen, alert.acknowledged_at, alert.resolved_at].filter(Boolean).map((t: string) => Date.parse(t)));
    const span = Math.max(end - start, HOUR);
    const from = start - Math.max(span, 6 * HOUR);
    // An open alert's chart reaches now, with a little room after it, so the marker of an
    // alert that just fired is not on the chart's edge.
    const to = isOpen(alert) ? Math.max(Date.now(), end) + (Math.max(Date.now(), end) - from) * 0.03
      : Math.min(Date.now(), end + Math.max(span / 2, 2 * HOUR));
    const width = Math.max(box.clientWidth, 280);
    let series: Series;
    try {
      // The alert's own dataset's series (absent: the default dataset).
      series = await api<Series>(`${seriesPath(alert.model, alert.version, alert.metric)}?from=${Math.floor(from)}&to=${Math.ceil(to)}&max_points=${Math.min(Math.max(Math.round(width), 200), 2000)}&dataset=${enc(alert.dataset ?? "default")}`);
    } catch (error) {
      if (!gone) clear(box, h("p", { class: "error" }, `Cannot load ${alert.metric}: ${(error as Error).message}`));
      return;
    }
    if (gone) return;
    if (chart) { destroyChart(chart); chart = null; }
    clear(box);
    if (caption) caption.textContent = ` ${counted(series.count, "sample")} around the alert`;
    const [xs, ys] = columns(series);
    if (xs.length === 0) box.append(h("p", { class: "empty" }, `No ${alert.metric} samples around the alert.`));
    const lines: Line[] = [];
    const t = alert.trigger ?? {};
    if (t.condition_type === "threshold") {
      lines.push({ value: t.threshold_value, label: `${alert.rule_name} (${t.comparison_operator} ${num(t.threshold_value)})` });
      if (rule?.clear_threshold != null) lines.push({ value: rule.clear_threshold, label: `${alert.rule_name} clears`, dashed: true });
    } else if (t.condition_type === "degradation" && Number.isFinite(t.baseline_value)) {
      const muted = getComputedStyle(document.documentElement).getPropertyValue("--muted");
      lines.push({ value: t.baseline_value, label: "baseline", dashed: true, color: muted });
      const sign = series.direction === "lower_is_better" ? 1 : -1;
      lines.push({ value: t.baseline_value * (1 + (sign * t.max_degradation_percentage) / 100), label: `${alert.rule_name} (${t.max_degradation_percentage} % worse than baseline)` });
    } else if (t.condition_type === "change_point") {
      const muted = getComputedStyle(document.documentElement).getPropertyValue("--muted");
      if (Number.isFinite(t.level_before)) lines.push({ value: t.level_before, label: "level before", dashed: true, color: muted });
      if (Number.isFinite(t.level_after)) lines.push({ value: t.level_after, label: "level after", dashed: true });
    }
    const markers: Marker[] = [];
    if (t.last_sample_at) markers.push({ at: Date.parse(t.last_sample_at) / 1000, kind: "preview", label: "last sample before the silence" });
    if (t.change_started_at) markers.push({ at: Date.parse(t.change_started_at) / 1000, kind: "preview", label: "change began" });
    markers.push({ at: Date.parse(alert.first_seen) / 1000, kind: "fired", label: `first seen: ${alert.message}`, severity: alert.severity });
    if (alert.acknowledged_at) markers.push({ at: Date.parse(alert.acknowledged_at) / 1000, kind: "acknowledged", label: `acknowledged by ${alert.acknowledged_by}` });
    if (alert.resolved_at) markers.push({ at: Date.parse(alert.resolved_at) / 1000, kind: "resolved", label: `resolved by ${alert.resolved_by}` });
    chart = metricChart(box, [{ label: `${alert.version}`, xs, ys, ...ranges(series) }], { lines, markers }, { width, timeWindow: [from, to] });
    // The chart's data where the browser tests (and anyone in the console) can read it.
    (box as any).uplot = chart;
    (box as any).overlays = { lines, markers };
  }

  const unsubscribe = onLive((event) => {
    if (event.type !== "samples" && event.data?.alert?.id === id) void load();
  });
  void load();
  return () => { gone = true; unsubscribe(); if (chart) destroyChart(chart); };
}

function valueLabel(kind: string | undefined): string {
  return kind === "degradation" ? "Worse than baseline by" : kind === "change_point" ? "Shift (noise sd)" : kind === "no_data" ? "Silent for" : "Value";
}

/** The rule's condition in words, from the alert's trigger (what held when it fired). */
function condition(alert: any, rule: any): string {
  const t = alert.trigger ?? {};
  switch (t.condition_type) {
    case "threshold": return `${alert.metric} ${t.comparison_operator} ${num(t.threshold_value)}${rule?.for_evaluations > 1 ? ` for ${rule.for_evaluations} evaluations` : ""}`;
    case "degradation": return `${alert.metric} more than ${num(t.max_degradation_percentage)} % worse than its baseline${rule?.baseline_window_hours ? ` (the last ${rule.baseline_window_hours} h)` : ""}`;
    case "change_point": return `a sustained shift of ${alert.metric}'s level${t.min_shift_sd != null ? ` of at least ${num(t.min_shift_sd)} sd` : t.min_shift_percentage != null ? ` of at least ${num(t.min_shift_percentage)} %` : ""}`;
    case "no_data": return `${alert.model} ${alert.version} ${alert.metric} sends nothing for longer than${t.no_data_minutes != null ? ` ${num(t.no_data_minutes)} min` : ""}${t.no_data_minutes != null && t.no_data_intervals != null ? " and" : ""}${t.no_data_intervals != null ? ` ${num(t.no_data_intervals)} usual intervals` : ""}`;
    default: return alert.message;
  }
}
