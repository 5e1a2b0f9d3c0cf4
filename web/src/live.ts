// The event stream (GET /api/v1/events, server-sent events). One EventSource for the
// whole app; pages subscribe while they are shown. The browser reconnects by itself; we
// show the connection's state in the header so a dropped stream is never silent. On a
// server that wants tokens the stream carries the session cookie like any request.
import { needsSignIn } from "./session";

export type LiveEvent = { type: "samples" | "alert_fired" | "alert_changed"; data: any };
type Listener = (event: LiveEvent) => void;

const listeners = new Set<Listener>();
let source: EventSource | null = null;
let indicator: HTMLElement | null = null;
let everOpen = false;

function show(state: "live" | "reconnecting" | "connecting", text: string) {
  if (!indicator) return;
  indicator.dataset.state = state;
  indicator.textContent = text;
  indicator.title = state === "live" ? "New samples and alerts appear as they arrive" : "The page keeps working; it updates again once the stream is back";
}

export function startLive(el: HTMLElement): void {
  indicator = el;
  connect();
  // A page the browser keeps in its back/forward cache would keep its stream open, and
  // a browser has only six connections per server: a few trips away and back and the
  // dashboard's own requests would wait forever. Close on leaving, reopen on return.
  addEventListener("pagehide", () => {
    source?.close();
    source = null;
  });
  addEventListener("pageshow", (event) => {
    if (event.persisted && !source) connect();
  });
}

/** Closes the stream and opens it again: after signing in or out. */
export function restartLive(): void {
  source?.close();
  source = null;
  connect();
}

function connect() {
  // Signed out on a server that wants tokens: the stream would only be refused.
  if (needsSignIn()) { show("connecting", "signed out"); return; }
  show("connecting", "connecting…");
  source = new EventSource("/api/v1/events");
  source.onopen = () => {
    show("live", everOpen ? "live (reconnected)" : "live");
    everOpen = true;
  };
  source.onerror = () => {
    // CONNECTING: the browser retries by itself. CLOSED (e.g. the server answered an
    // error status): retry ourselves after a pause.
    show("reconnecting", "connection lost, reconnecting…");
    if (source && source.readyState === EventSource.CLOSED) {
      const closed = source;
      source = null;
      setTimeout(() => { if (!source && closed) connect(); }, 3000);
    }
  };
  for (const type of ["samples", "alert_fired", "alert_changed"] as const) {
    source.addEventListener(type, (message) => {
      let data: any;
      try { data = JSON.parse((message as MessageEvent).data); } catch { return; }
      for (const listener of listeners) listener({ type, data });
    });
  }
}

/** Subscribes until the returned function is called (pages call it when left). */
export function onLive(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
