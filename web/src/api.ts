// The public HTTP API, nothing else: every call goes through `api`, which turns the
// server's error body ({"error": {"code", "message", "field"}}) into an ApiError whose
// message the pages show. Credentials travel in the session cookie (session.ts), never
// in page scripts.

export class ApiError extends Error {
  constructor(public status: number, message: string, public field?: string) {
    super(message);
  }
}

export async function api<T = any>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const headers = new Headers(init.headers);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(init.json);
  }
  let response: Response;
  try {
    response = await fetch(`/api/v1${path}`, { ...init, headers, body });
  } catch {
    throw new ApiError(0, "cannot reach the modelwatch server (is it running?)");
  }
  const text = await response.text();
  let data: any = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const error = data && typeof data === "object" ? data.error : null;
    const message = error?.message ?? (typeof data === "string" && data ? data : response.statusText);
    const field = error?.field;
    // Signed out (or the token was revoked meanwhile): the app shows its sign-in page.
    if (response.status === 401 && path !== "/session") dispatchEvent(new Event("modelwatch:unauthorized"));
    throw new ApiError(response.status, `${response.status}: ${message}${field ? ` (field ${field})` : ""}`, field);
  }
  return data as T;
}

/** A list out of a response that is either the list itself or an object holding it. */
export function list<T = any>(data: any, ...keys: string[]): T[] {
  if (Array.isArray(data)) return data;
  if (data && typeof data === "object") {
    for (const key of [...keys, "items", "data", "results"]) {
      if (Array.isArray(data[key])) return data[key];
    }
  }
  return [];
}

export const enc = encodeURIComponent;

export function seriesPath(model: string, version: string, metric?: string): string {
  const base = `/models/${enc(model)}/versions/${enc(version)}`;
  return metric ? `${base}/metrics/${enc(metric)}` : base;
}

export interface Series {
  direction: string;
  count: number;
  downsampled: boolean;
  points: { timestamp: string; value: number }[];
  buckets: { start: string; count: number; mean: number; min: number; max: number }[];
}

/** A series as two arrays (seconds, values) for uPlot; buckets become their means. */
export function columns(series: Series): [number[], (number | null)[]] {
  const xs: number[] = [];
  const ys: (number | null)[] = [];
  if (series.downsampled) {
    for (const b of series.buckets) { xs.push(Date.parse(b.start) / 1000); ys.push(b.count === 0 ? null : b.mean); }
  } else {
    for (const p of series.points) { xs.push(Date.parse(p.timestamp) / 1000); ys.push(p.value); }
  }
  return [xs, ys];
}

/**
 * Each bucket's minimum and maximum, aligned with `columns`; null when the series came
 * as raw points (every point is drawn then, so there is no range to show).
 */
export function ranges(series: Series): { lo: (number | null)[]; hi: (number | null)[] } | null {
  if (!series.downsampled) return null;
  const lo: (number | null)[] = [];
  const hi: (number | null)[] = [];
  for (const b of series.buckets) {
    lo.push(b.count === 0 ? null : b.min);
    hi.push(b.count === 0 ? null : b.max);
  }
  return { lo, hi };
}

/** The most alerts a page reads for one listing: five pages of the API's largest size. */
export const ALERTS_CAP = 5000;

export interface AlertListing {
  /** Newest first, every matching alert up to ALERTS_CAP. */
  alerts: any[];
  /** How many alerts match, over all pages (may exceed alerts.length at the cap). */
  total: number;
  /** Matching alerts per severity, over all pages. */
  bySeverity: Record<string, number>;
}

/**
 * Every alert matching `params` (GET /api/v1/alerts), following `next_cursor` in pages of
 * 1,000 up to ALERTS_CAP. A page of a listing that hides the rest would hide alerts from
 * whoever is on call, so the pages never stop at the API's first page. A cursor continues
 * after the last alert read, so alerts firing while the pages are read neither shift nor
 * repeat rows (the next live event reloads the listing to show them). The counts come
 * from the first page's answer, which counts every match.
 */
export async function allAlerts(params: URLSearchParams): Promise<AlertListing> {
  const query = new URLSearchParams(params);
  query.set("limit", "1000");
  query.delete("offset");
  const alerts: any[] = [];
  let total = 0;
  let bySeverity: Record<string, number> = {};
  for (let first = true; alerts.length < ALERTS_CAP; first = false) {
    const page: any = await api(`/alerts?${query}`);
    if (first) { total = page.total; bySeverity = page.by_severity ?? {}; }
    alerts.push(...list(page, "alerts"));
    if (typeof page.next_cursor !== "string") break;
    query.set("cursor", page.next_cursor);
  }
  return { alerts: alerts.slice(0, ALERTS_CAP), total, bySeverity };
}

/** Open alerts are those not resolved yet. */
export function isOpen(alert: any): boolean {
  return !alert.resolved_at && alert.status !== "resolved";
}
