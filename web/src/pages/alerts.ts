// Alerts: filter by status, severity, model and time; acknowledge and resolve (with
// notes) as the person named in "You are"; each alert's history; silences.
import { api, allAlerts, list, enc, isOpen, type AlertListing } from "../api";
import { onLive } from "../live";
import { h, clear, time, num, pValue, badge, alertFigures, labelled, markReady, hashParams, hashPath, setHashParams, SEVERITIES, RANGES } from "../util";

export function whoField(): HTMLInputElement {
  const input = h("input", { type: "text", id: "who", value: localStorage.getItem("modelwatch.user") ?? "", placeholder: "you@example.com", autocomplete: "email", required: true });
  input.addEventListener("change", () => localStorage.setItem("modelwatch.user", input.value.trim()));
  return input;
}

/** The alerts table's columns (their count for cells spanning a whole row). */
const HEADERS = ["Severity", "Status", "Alert", "Model", "p-value", "Test", "First seen", "Last seen", "Handled", "Actions"];
const COLUMNS = HEADERS.length;
const SILENCE_HEADERS = ["Matches", "From", "Until", "By", "Comment", ""];

/**
 * The p-value and test cells of an alert. A degradation alert records the detector's
 * significance test when it fired (`trigger.test`); a threshold alert compares a value
 * with a line, so no test applies ("—"); a degradation alert stored before tests were
 * recorded has none to show; a change-point alert shows when the shift began and its size.
 * Worded as the notifications word them (notify's message.rs).
 */
/** An alert's metric as people read it: `*` is the whole version. */
function metricWords(metric: string): string {
  return metric === "*" ? "every metric" : metric;
}

function evidence(trigger: any): HTMLElement[] {
  if (trigger?.condition_type === "change_point") {
    // A change-point alert says when the shift began and how large it is; its evidence is
    // a sequential test's statistic crossing a line set by the false-alarm interval.
    const why = "a change-point rule's CUSUM crossed the line its false-alarm interval sets: no p-value";
    const pct = trigger.shift_percentage != null ? `${trigger.shift_percentage > 0 ? "+" : ""}${num(trigger.shift_percentage)} %, ` : "";
    return [h("td", { class: "num p-value", title: why }, "—"),
      h("td", { class: "test small" }, h("div", null, "change began ", time(trigger.change_started_at)),
        h("div", { class: "muted" }, `shift ${num(trigger.shift)} (${pct}${num(trigger.shift_sd)} sd)`))];
  }
  if (trigger?.condition_type === "no_data") {
    const why = "a no-data rule: the series reported nothing for longer than its limit";
    const usual = trigger.usual_interval_minutes != null ? `, usual interval ${num(trigger.usual_interval_minutes)} min` : "";
    return [h("td", { class: "num p-value", title: why }, "—"),
      h("td", { class: "test small" }, h("div", null, "last sample ", time(trigger.last_sample_at)),
        h("div", { class: "muted" }, `silent ${num(trigger.silent_minutes)} min (limit ${num(trigger.limit_minutes)} min${usual})`),
        // A rule on a whole version lists the metrics it saw last.
        (trigger.last_samples ?? []).length
          ? h("div", { class: "muted last-samples" }, "last seen: ", (trigger.last_samples as any[]).map((s) => `${s.metric} ${new Date(s.at).toLocaleString()}`).join(", "))
          : null)];
  }
  if (trigger?.condition_type !== "degradation") {
    const why = "a threshold rule compares a value with a line: no statistical test";
    return [h("td", { class: "num p-value", title: why }, "—"), h("td", { class: "test", title: why }, "—")];
  }
  const test = trigger.test;
  if (!test) {
    const why = "this alert was stored before modelwatch recorded the test on alerts";
    return [h("td", { class: "num p-value muted", title: why }, "not recorded"), h("td", { class: "test muted", title: why }, "—")];
  }
  return [
    h("td", { class: "num p-value", title: test.p_value == null ? "the test gave no finite p-value" : `p = ${test.p_value}` },
      test.p_value == null ? "not computed" : pValue(test.p_value)),
    // Combined tests ("prediction_interval+weekly_reference") may break after each "+".
    h("td", { class: "test small" }, String(test.method).split("+").map((part, i) => (i === 0 ? part : ["+", h("wbr"), part])),
      h("div", { class: "muted" }, `α ${test.alpha}`)),
  ];
}

export function alertsPage(main: HTMLElement): () => void {
  const params = hashParams();
  const address = hashPath();
  const status = h("select", { "aria-label": "Status" }, ...[["open", "open (not resolved yet)"], ["", "any status"], ["active", "active"], ["acknowledged", "acknowledged"], ["resolved", "resolved"], ["suppressed", "suppressed"]]
    .map(([v, t]) => h("option", { value: v, selected: (params.get("status") ?? "open") === v }, t)));
  const severity = h("select", { "aria-label": "Severity" }, h("option", { value: "" }, "any severity"), ...SEVERITIES.map((s) => h("option", { value: s, selected: params.get("severity") === s }, s)));
  const model = h("input", { type: "search", placeholder: "model", value: params.get("model") ?? "", "aria-label": "Model" });
  const since = h("select", { "aria-label": "Time" }, h("option", { value: "" }, "any time"), ...Object.keys(RANGES).map((r) => h("option", { value: r, selected: params.get("since") === r }, `last ${r}`)));
  const who = whoField();
  const message = h("div", { role: "status", "aria-live": "polite" });
  const summary = h("div", { class: "summary" });
  const tbody = h("tbody");
  const silences = h("section", { "aria-labelledby": "sil-h" });
  clear(main,
    h("h1", null, "Alerts"),
    summary,
    h("div", { class: "toolbar" }, status, severity, model, since,
      h("label", { class: "who needs-write" }, "You are ", who)),
    h("p", { class: "read-only-note muted" }, "Signed in with a read token: you can look, not act. Sign in with a write token to acknowledge, resolve or silence."),
    message,
    h("div", { class: "scroll" }, h("table", { class: "grid alerts cards" },
      h("thead", null, h("tr", null, ...HEADERS.map((c) => h("th", { scope: "col" }, c)))),
      tbody)),
    silences);

  let gone = false;
  // Live events reload the list often, and a reload reads several pages: only the
  // newest load may draw, so an older answer arriving late never replaces a newer one.
  let loads = 0;
  let refreshError: HTMLElement | null = null;
  async function load() {
    const p = new URLSearchParams();
    if (status.value) p.set("status", status.value);
    if (severity.value) p.set("severity", severity.value);
    if (model.value.trim()) p.set("model", model.value.trim());
    // "last 7d" is alerts alive at some point of the last 7 days; "any time" is all of them.
    p.set("hours", since.value ? String(Math.round(RANGES[since.value] / 3600e3)) : "all");
    const shown = new URLSearchParams();
    if (status.value !== "open") shown.set("status", status.value);
    for (const [k, v] of [["severity", severity.value], ["model", model.value.trim()], ["since", since.value]]) if (v) shown.set(k, v);
    setHashParams(address, shown);
    const ticket = ++loads;
    let listing: AlertListing;
    try {
      listing = await allAlerts(p);
    } catch (error) {
      if (gone || ticket !== loads) return;
      // A failed refresh of the same filters keeps the rows shown (an alert does not
      // vanish from the screen because one reload failed) and says so.
      if (summary.dataset.query === p.toString()) {
        refreshError?.remove();
        refreshError = h("p", { class: "error" }, `Could not refresh the alerts, shown as they were: ${(error as Error).message}`);
        message.append(refreshError);
        return;
      }
      delete summary.dataset.query;
      clear(summary);
      shownRows = new Map();
      clear(tbody, h("tr", null, h("td", { colspan: COLUMNS, class: "error" }, `Cannot list alerts: ${(error as Error).message}`)));
      return;
    }
    if (gone || ticket !== loads) return;
    refreshError?.remove();
    refreshError = null;
    const { alerts, total, bySeverity } = listing;
    // The counts are the server's, over every matching alert (even beyond the cap).
    clear(summary, SEVERITIES.map((s) => h("span", { class: `badge b-${s}` }, `${bySeverity[s] ?? 0} ${s}`)),
      h("span", { class: "muted", "data-total": String(total) },
        alerts.length < total
          ? `showing the newest ${alerts.length.toLocaleString()} of ${total.toLocaleString()} matching alerts: narrow the filters to see the others`
          : `${total.toLocaleString()} matching ${total === 1 ? "alert" : "alerts"}`));
    // The query the table shows, once drawn: a test (or a person in the inspector) can
    // tell which filters the rows and counts answer.
    summary.dataset.query = p.toString();
    if (alerts.length === 0) {
      shownRows = new Map();
      clear(tbody, h("tr", null, h("td", { colspan: COLUMNS, class: "empty" }, "No alerts match these filters.")));
      return;
    }
    // Rows of alerts that did not change are kept as they are: live events reload the
    // list often. An open alert changes at every evaluation (last seen, occurrences), so
    // its row is rebuilt then: the notes typed into it, their focus and an open history
    // carry over (see `row`).
    const focused = document.activeElement;
    const typing = focused instanceof HTMLInputElement && focused.dataset.notesFor
      ? { id: focused.dataset.notesFor, start: focused.selectionStart, end: focused.selectionEnd } : null;
    const next = new Map<string, { json: string; rows: HTMLElement[] }>();
    for (const alert of alerts) {
      const json = JSON.stringify(alert);
      const kept = shownRows.get(alert.id);
      next.set(alert.id, kept && kept.json === json ? kept : { json, rows: row(alert) });
    }
    shownRows = next;
    clear(tbody, [...next.values()].map((r) => r.rows));
    if (typing && !document.activeElement?.closest("tbody")) {
      const input = [...tbody.querySelectorAll<HTMLInputElement>("input[data-notes-for]")].find((i) => i.dataset.notesFor === typing.id);
      input?.focus();
      input?.setSelectionRange(typing.start, typing.end);
    }
  }
  let shownRows = new Map<string, { json: string; rows: HTMLElement[] }>();
  /** Resolution notes being typed, by alert id; the alerts whose history is open. */
  const drafts = new Map<string, string>();
  const historyOpen = new Set<string>();

  function row(alert: any): HTMLElement[] {
    const history = h("tr", { class: "history", hidden: !historyOpen.has(alert.id) }, h("td", { colspan: COLUMNS }));
    if (!history.hidden) void showHistory(alert.id, history.firstElementChild as HTMLElement);
    const notes = h("input", { type: "text", placeholder: "resolution notes", "aria-label": `Notes for resolving ${alert.rule_name}`,
      value: drafts.get(alert.id) ?? "", "data-notes-for": alert.id });
    notes.addEventListener("input", () => drafts.set(alert.id, notes.value));
    const act = async (action: "acknowledge" | "resolve") => {
      const user = who.value.trim();
      if (!user) { clear(message, h("p", { class: "error" }, "Enter your name or e-mail in “You are” first.")); who.focus(); return; }
      localStorage.setItem("modelwatch.user", user);
      try {
        const body: any = { by: user };
        if (action === "resolve" && notes.value.trim()) body.notes = notes.value.trim();
        await api(`/alerts/${enc(alert.id)}/${action}`, { method: "POST", json: body });
        if (action === "resolve") drafts.delete(alert.id);
        clear(message, h("p", { class: "ok" }, `${action === "acknowledge" ? "Acknowledged" : "Resolved"} ${alert.rule_name}.`));
        await load();
      } catch (error) {
        clear(message, h("p", { class: "error" }, `Could not ${action}: ${(error as Error).message}`));
      }
    };
    const open = isOpen(alert);
    const tr = h("tr", { "data-alert": alert.id, "data-status": alert.status }, ...labelled(HEADERS, [
      h("td", null, badge(alert.severity)),
      h("td", null, badge(`s-${alert.status}`, alert.status)),
      h("td", null, h("a", { href: `#/alerts/${enc(alert.id)}`, class: "alert-link" }, h("strong", null, alert.rule_name)), h("div", { class: "muted small" }, alert.message),
        h("div", { class: "muted small figures" }, `${alertFigures(alert)}, ${alert.occurrences}×`)),
      h("td", null, h("a", { href: `#/model/${enc(alert.model)}/${enc(alert.version)}` }, `${alert.model} ${alert.version}`), h("div", { class: "muted small" }, alert.dataset ? `${metricWords(alert.metric)} · ${alert.dataset}` : metricWords(alert.metric))),
      ...evidence(alert.trigger),
      h("td", null, time(alert.first_seen)),
      h("td", null, time(alert.last_seen)),
      h("td", { class: "small" },
        alert.acknowledged_by ? h("div", null, "ack by ", alert.acknowledged_by, ", ", time(alert.acknowledged_at)) : null,
        alert.resolved_by ? h("div", null, "resolved by ", alert.resolved_by, ", ", time(alert.resolved_at)) : null,
        alert.resolution_notes ? h("div", { class: "muted" }, `“${alert.resolution_notes}”`) : null),
      h("td", { class: "actions" },
        open && alert.status !== "acknowledged" ? h("button", { type: "button", class: "needs-write", onclick: () => act("acknowledge") }, "Acknowledge") : null,
        open ? h("span", { class: "resolve needs-write" }, notes, h("button", { type: "button", onclick: () => act("resolve") }, "Resolve")) : null,
        h("button", { type: "button", class: "ghost", "aria-expanded": String(!history.hidden), onclick: async (e: Event) => {
          const button = e.currentTarget as HTMLButtonElement;
          history.hidden = !history.hidden;
          if (history.hidden) historyOpen.delete(alert.id); else historyOpen.add(alert.id);
          button.setAttribute("aria-expanded", String(!history.hidden));
          if (!history.hidden) await showHistory(alert.id, history.firstElementChild as HTMLElement);
        } }, "History"))]));
    return [tr, history];
  }

  async function showHistory(id: string, cell: HTMLElement) {
    clear(cell, h("span", { class: "muted" }, "Loading…"));
    try {
      const entries = list(await api(`/alerts/${enc(id)}/history`), "history", "transitions");
      clear(cell, entries.length === 0 ? h("span", { class: "muted" }, "No history.") : h("ol", { class: "timeline" },
        entries.map((t: any) => h("li", null, time(t.at ?? t.timestamp), " ", h("strong", null, `${t.from ?? "new"} → ${t.to}`),
          t.by || t.actor ? ` by ${t.by ?? t.actor}` : "", t.notes ? h("span", { class: "muted" }, ` — ${t.notes}`) : null))));
    } catch (error) {
      clear(cell, h("span", { class: "error" }, `Cannot load the history: ${(error as Error).message}`));
    }
  }

  async function loadSilences() {
    const form = h("form", { class: "inline-form needs-write" },
      h("label", null, "Model ", h("input", { name: "model", required: true, size: 14 })),
      h("label", null, "Version ", h("input", { name: "version", placeholder: "all", size: 8 })),
      h("label", null, "Metric ", h("input", { name: "metric", placeholder: "all", size: 10 })),
      h("label", null, "For ", h("select", { name: "duration" }, ...[["60", "1 hour"], ["240", "4 hours"], ["1440", "1 day"], ["10080", "1 week"]].map(([v, t]) => h("option", { value: v }, t)))),
      h("label", null, "Comment ", h("input", { name: "comment", required: true, size: 18 })),
      h("button", { type: "submit" }, "Create silence"));
    const listBox = h("div");
    clear(silences, h("h2", { id: "sil-h" }, "Silences"), h("p", { class: "muted" }, "A silence keeps matching alerts from notifying anyone while it lasts."), form, listBox);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const user = who.value.trim();
      if (!user) { clear(message, h("p", { class: "error" }, "Enter your name in “You are” to create a silence.")); who.focus(); return; }
      const spec: any = { model: data.get("model"), duration_minutes: Number(data.get("duration")), comment: data.get("comment"), created_by: user };
      if (String(data.get("version") ?? "").trim()) spec.version = String(data.get("version")).trim();
      if (String(data.get("metric") ?? "").trim()) spec.metric = String(data.get("metric")).trim();
      try {
        await api("/silences", { method: "POST", json: spec });
        form.reset();
        await loadSilences();
      } catch (error) {
        clear(message, h("p", { class: "error" }, `Could not create the silence: ${(error as Error).message}`));
      }
    });
    try {
      const all = list(await api("/silences"), "silences");
      const now = Date.now();
      clear(listBox, all.length === 0 ? h("p", { class: "empty" }, "No silences.") : h("div", { class: "scroll" }, h("table", { class: "grid cards" },
        h("thead", null, h("tr", null, ...SILENCE_HEADERS.map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, all.map((s: any) => {
          const active = Date.parse(s.ends_at) > now;
          return h("tr", { class: active ? "" : "muted" }, ...labelled(SILENCE_HEADERS, [
            h("td", null, [s.model, s.version ?? "all versions", s.metric ?? "all metrics"].join(" · ")),
            h("td", null, time(s.starts_at)), h("td", null, time(s.ends_at), active ? "" : " (expired)"),
            h("td", null, s.created_by), h("td", null, s.comment),
            h("td", null, active ? h("button", { type: "button", class: "needs-write", onclick: async () => {
              try {
                await api(`/silences/${enc(s.id)}`, { method: "DELETE" }).catch(() => api(`/silences/${enc(s.id)}/expire`, { method: "POST" }));
                await loadSilences();
              } catch (error) { clear(message, h("p", { class: "error" }, `Could not expire: ${(error as Error).message}`)); }
            } }, "Expire") : null)]));
        })))));
    } catch (error) {
      clear(listBox, h("p", { class: "error" }, `Cannot list silences: ${(error as Error).message}`));
    }
  }

  for (const el of [status, severity, since]) el.addEventListener("change", () => void load());
  model.addEventListener("input", () => void load());
  const unsubscribe = onLive((event) => { if (event.type !== "samples") void load(); });
  void load().finally(() => { if (!gone) markReady(main); });
  void loadSilences();
  return () => { gone = true; unsubscribe(); };
}
