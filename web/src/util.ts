// Small DOM and formatting helpers. Elements are built with `h` (never innerHTML) so
// alert messages and notes, which people type, cannot inject markup.

export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value as EventListener);
      } else if (key === "class") {
        el.className = String(value);
      } else if (key === "value" && "value" in el) {
        (el as HTMLInputElement).value = String(value);
      } else if (key === "checked" || key === "selected" || key === "disabled") {
        (el as unknown as Record<string, boolean>)[key] = Boolean(value);
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

const localFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

/** A time in the viewer's zone, with UTC on hover. */
export function time(value: string | number | null | undefined): HTMLElement | string {
  if (value === null || value === undefined || value === "") return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return h("time", { datetime: date.toISOString(), title: `UTC: ${date.toISOString().replace(".000Z", "Z")}` },
    localFormat.format(date));
}

/** "3 min ago", for last-sample columns, with the full time on hover. */
export function ago(value: string | null | undefined, now = Date.now()): HTMLElement | string {
  if (!value) return "—";
  const date = new Date(value);
  const seconds = Math.round((now - date.getTime()) / 1000);
  let text: string;
  if (seconds < 60) text = `${Math.max(seconds, 0)} s ago`;
  else if (seconds < 3600) text = `${Math.round(seconds / 60)} min ago`;
  else if (seconds < 86400 * 2) text = `${Math.round(seconds / 3600)} h ago`;
  else text = `${Math.round(seconds / 86400)} d ago`;
  return h("time", { datetime: date.toISOString(), title: `${localFormat.format(date)} (UTC: ${date.toISOString()})` }, text);
}

/** "1 sample", "2 samples": a count with its noun, in the singular for one. */
export function counted(count: number, noun: string): string {
  return `${count} ${count === 1 ? noun : `${noun}s`}`;
}

export function num(value: number | null | undefined, digits = 4): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) return value.toExponential(2);
  return Number(value.toPrecision(digits)).toString();
}

/**
 * A p-value as the notifications print it (notify's `format_p_value`): four decimals;
 * below 0.0001 two significant digits, where four decimals would say 0.0000. Every page
 * shows p-values through this, with the full value in the cell's title.
 */
export function pValue(p: number): string {
  return p !== 0 && Math.abs(p) < 1e-4 ? p.toExponential(1) : p.toFixed(4);
}

export function pct(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return `${value > 0 ? "+" : ""}${value.toFixed(1)} %`;
}

/**
 * An alert's value in its rule kind's unit. The core keeps `value` and `worst_value` "in
 * the condition's terms": a threshold alert's are the metric's value, a degradation
 * alert's the percentage by which the metric is worse than its baseline, a change-point
 * alert's the level shift in noise standard deviations. Every page shows them through
 * this, so a percentage never reads as a metric value.
 */
export function alertValue(alert: any, value: number | null | undefined = alert?.value): string {
  if (value == null || !Number.isFinite(value)) return "—";
  switch (alert?.trigger?.condition_type) {
    case "degradation": return `${num(value)} %`;
    case "change_point": return `${value > 0 ? "+" : ""}${num(value)} sd`;
    case "no_data": return `${num(value)} min`;
    default: return num(value);
  }
}

/**
 * An alert's value with its meaning and the worst one seen, as the alerts table and the
 * alert page say it: "value 0.87 (worst 0.85)", "11.53 % worse than baseline (worst
 * 12.1 %)", "shift +2.4 sd (worst +3.1 sd)".
 */
export function alertFigures(alert: any): string {
  const worst = alert.worst_value != null && alert.worst_value !== alert.value ? ` (worst ${alertValue(alert, alert.worst_value)})` : "";
  switch (alert?.trigger?.condition_type) {
    case "degradation": return `${alertValue(alert)} worse than baseline${worst}`;
    case "change_point": return `shift ${alertValue(alert)}${worst}`;
    case "no_data": return `silent for ${alertValue(alert)}`;
    default: return `value ${alertValue(alert)}${worst}`;
  }
}

/**
 * Names each cell after its column (`data-label`). On a narrow screen style.css shows the
 * rows of a `table.cards` as cards, each cell under its label, so no table needs sideways
 * scrolling on a phone.
 */
export function labelled(columns: readonly string[], cells: HTMLElement[]): HTMLElement[] {
  cells.forEach((cell, i) => { if (columns[i]) cell.dataset.label = columns[i]; });
  return cells;
}

export function badge(kind: string, text?: string): HTMLElement {
  return h("span", { class: `badge b-${kind}` }, text ?? kind);
}

/** Runs at most `limit` of the queued tasks at a time (keeps the overview's lazy loads polite). */
export function limiter(limit: number) {
  let running = 0;
  const queue: (() => void)[] = [];
  const next = () => {
    if (running >= limit) return;
    const task = queue.shift();
    if (!task) return;
    running++;
    task();
  };
  return <T>(work: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      queue.push(() => {
        work().then(resolve, reject).finally(() => { running--; next(); });
      });
      next();
    });
}

/**
 * Says the page has shown what it has — data, an empty state or an error — for the
 * browser tests (`main[data-ready]`) and the speed bench (the "ready" mark).
 */
export function markReady(main: HTMLElement): void {
  if (main.dataset.ready) return;
  main.dataset.ready = "1";
  performance.mark("ready");
}

export const RANGES: Record<string, number> = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };

/** The parameters after `?` in the hash route. */
export function hashParams(): URLSearchParams {
  const hash = location.hash;
  const at = hash.indexOf("?");
  return new URLSearchParams(at >= 0 ? hash.slice(at + 1) : "");
}

/** The hash route without its parameters: the page the address shows. */
export function hashPath(): string {
  const hash = location.hash;
  const at = hash.indexOf("?");
  return at >= 0 ? hash.slice(0, at) : hash || "#/";
}

/**
 * Writes `params` as the address's query while it still shows `page` (the page's
 * [`hashPath`] when it was drawn). A page being left must not touch the next page's
 * address: the address changes a task before the router hears of it, and the old page's
 * answers may arrive in between.
 */
export function setHashParams(page: string, params: URLSearchParams): void {
  if (hashPath() !== page) return;
  const query = params.toString();
  history.replaceState(null, "", query ? `${page}?${query}` : page);
}

export const SEVERITIES = ["critical", "high", "medium", "low"] as const;
