// Channels: the configured notification channels (GET /api/v1/channels, never a
// secret), each with its delivery counts since the server started, its recent deliveries
// and its recent failures (GET /api/v1/notifications?channel=…, from the outbox), and a
// "Send test" button (POST /api/v1/channels/{name}/test) that sends a clearly labelled
// test message now and says how it went.
import { api, ApiError, list, enc } from "../api";
import { onLive } from "../live";
import { h, clear, time, badge, labelled, markReady, hashParams } from "../util";

/** Deliveries shown per channel, newest first. */
const RECENT = 20;
const FAILURES = 10;
const REFRESH_MS = 5000;
const HEADERS = ["When", "Alert", "Event", "Status", "Attempts", "Error"];

export function channelsPage(main: HTMLElement): () => void {
  let gone = false;
  const body = h("div");
  clear(main, h("h1", null, "Channels"),
    h("p", { class: "muted" }, "Where notifications go: the channels of the configuration file's ", h("code", null, "[channels.NAME]"),
      " tables. Rules name them; each delivery is recorded, with its error when it failed."),
    body);

  async function load() {
    let channels: any[];
    try {
      channels = list(await api("/channels"), "channels");
    } catch (error) {
      if (!gone) clear(body, h("p", { class: "error" }, `Cannot list the channels: ${(error as Error).message}`));
      return;
    }
    if (gone) return;
    if (channels.length === 0) {
      clear(body, h("p", { class: "empty" }, "No channels are configured, so no alert notifies anyone. Add a ",
        h("code", null, "[channels.NAME]"), " table to modelwatch.toml (see examples/modelwatch.toml) and restart ", h("code", null, "modelwatch serve"), "."));
      return;
    }
    const read = await Promise.all(channels.map(async (channel) => {
      const [recent, failures] = await Promise.all([
        deliveries(`channel=${enc(channel.name)}&limit=${RECENT}`),
        deliveries(`channel=${enc(channel.name)}&status=failed&limit=${FAILURES}`),
      ]);
      return { channel, recent, failures };
    }));
    if (gone) return;
    // A refresh redraws only the channels whose figures changed, so a test's outcome and
    // the focus on a button stay where they are.
    const next = new Map<string, { json: string; element: HTMLElement }>();
    for (const { channel, recent, failures } of read) {
      const json = JSON.stringify([channel, recent instanceof Error ? recent.message : recent, failures instanceof Error ? failures.message : failures]);
      const kept = drawn.get(channel.name);
      next.set(channel.name, kept && kept.json === json ? kept : { json, element: section(channel, recent, failures) });
    }
    const first = drawn.size === 0;
    drawn = next;
    clear(body, [...next.values()].map((s) => s.element));
    const wanted = hashParams().get("channel");
    if (first && wanted) body.querySelector(`section[data-channel="${CSS.escape(wanted)}"]`)?.scrollIntoView({ block: "start" });
  }
  let drawn = new Map<string, { json: string; element: HTMLElement }>();
  /** Each channel's last test outcome, kept across redraws. */
  const outcomes = new Map<string, HTMLElement>();

  function section(channel: any, recent: any[] | Error, failures: any[] | Error): HTMLElement {
    let outcome = outcomes.get(channel.name);
    if (!outcome) {
      outcome = h("div", { class: "test-outcome", role: "status", "aria-live": "polite" });
      outcomes.set(channel.name, outcome);
    }
    const test: HTMLButtonElement = h("button", { type: "button", class: "needs-write", onclick: async () => {
      if (!outcome) return;
      test.disabled = true;
      clear(outcome, h("span", { class: "muted" }, "Sending…"));
      try {
        const result: any = await api(`/channels/${enc(channel.name)}/test`, { method: "POST" });
        clear(outcome, result.ok
          ? h("p", { class: "ok" }, `Test sent to ${result.target} in ${result.elapsed_ms} ms.`)
          : h("p", { class: "error" }, `The test failed${result.retryable ? " (the worker would retry)" : ""}: ${result.error}`));
      } catch (error) {
        clear(outcome, h("p", { class: "error" }, `Could not send a test: ${(error as Error).message}`));
      } finally {
        test.disabled = false;
      }
    } }, "Send test");
    const id = `ch-${channel.name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    return h("section", { class: "card channel", "data-channel": channel.name, "aria-labelledby": id },
      h("h2", { id }, channel.name, " ", h("span", { class: "badge" }, channel.kind)),
      h("p", null, h("span", { class: "muted" }, "to "), h("code", { class: "target" }, channel.target)),
      h("p", { class: "counts small" }, `Since the server started: ${channel.delivered} delivered, ${channel.retried} retried, `,
        h("span", { class: channel.failed > 0 ? "error-inline" : "" }, `${channel.failed} failed`), `, ${channel.skipped} skipped. `,
        h("span", { class: "muted" }, `At most ${channel.max_per_minute} a minute${channel.digest_after > 0 ? `, a digest after ${channel.digest_after}` : ""}; time-out ${channel.timeout_ms / 1000} s.`)),
      h("div", { class: "toolbar" }, test, outcome),
      h("h3", null, "Recent failures"),
      table(failures, "failures", "No failed deliveries."),
      h("h3", null, "Recent deliveries"),
      table(recent, "recent", "Nothing sent through this channel yet."));
  }

  async function deliveries(query: string): Promise<any[] | Error> {
    try {
      return list(await api(`/notifications?${query}`), "notifications");
    } catch (error) {
      return error as Error;
    }
  }

  function table(rows: any[] | Error, kind: string, empty: string): HTMLElement {
    if (rows instanceof Error) {
      // A server that delivers nothing has no outbox to read (404).
      const text = rows instanceof ApiError && rows.status === 404 ? "This server does not deliver notifications." : `Cannot list the deliveries: ${rows.message}`;
      return h("p", { class: rows instanceof ApiError && rows.status === 404 ? "muted" : "error" }, text);
    }
    if (rows.length === 0) return h("p", { class: "muted", "data-deliveries": kind }, empty);
    return h("div", { class: "scroll" }, h("table", { class: "grid cards deliveries", "data-deliveries": kind },
      h("thead", null, h("tr", null, ...HEADERS.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, rows.map((d: any) => h("tr", { "data-status": d.status, "data-alert": d.alert_id }, ...labelled(HEADERS, [
        h("td", null, time(d.finished_at ?? d.created_at)),
        h("td", null, h("a", { href: `#/alerts/${enc(d.alert_id)}` }, h("code", null, d.alert_id))),
        h("td", null, d.event),
        h("td", null, badge(`d-${d.status}`, d.status)),
        h("td", { class: "num" }, String(d.attempts)),
        h("td", { class: "small prose-narrow" }, d.last_error ?? "")]))))));
  }

  // Deliveries happen in the worker, after the alert's event: read them again every few
  // seconds while the page is shown, and soon after an alert fires or changes.
  let soon: ReturnType<typeof setTimeout> | null = null;
  const unsubscribe = onLive((event) => {
    if (event.type === "samples" || soon) return;
    soon = setTimeout(() => { soon = null; if (!gone) void load(); }, 1500);
  });
  const every = setInterval(() => { if (!gone && !document.hidden) void load(); }, REFRESH_MS);
  void load().finally(() => { if (!gone) markReady(main); });
  return () => { gone = true; unsubscribe(); clearInterval(every); if (soon) clearTimeout(soon); };
}
