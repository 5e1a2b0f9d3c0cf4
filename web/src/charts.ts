// Charts are uPlot (small, fast with 40k+ points, canvas). What uPlot does not draw by
// itself — the baseline band, rule lines and alert markers — is drawn by a uPlot plugin
// on its canvas in data coordinates, so zooming and resizing keep them in place. The
// canvas is for the eye and the mouse; the markers are also a list of buttons under the
// chart, for the keyboard and screen readers.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h, clear } from "./util";

function css(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function sparkline(el: HTMLElement, xs: number[], ys: (number | null)[]): uPlot {
  const opts: uPlot.Options = {
    width: 120, height: 28, pxAlign: 0,
    cursor: { show: false }, legend: { show: false }, select: { show: false, left: 0, top: 0, width: 0, height: 0 },
    axes: [{ show: false }, { show: false }],
    scales: { x: { time: true } },
    series: [{}, { stroke: css("--accent"), width: 1.25, points: { show: false } }],
  };
  return new uPlot(opts, [xs, ys], el);
}

/** A moment on a chart. `label` says what happened ("alert: accuracy below 0.9"). */
/** `href`: a page the marker stands for (an alert's `#/alerts/{id}`), linked beside its button. */
export interface Marker { at: number; kind: "fired" | "acknowledged" | "resolved" | "preview"; label: string; severity?: string; href?: string }
export interface Line { value: number; label: string; dashed?: boolean; color?: string }
export interface Overlays { band?: [number, number] | null; lines?: Line[]; markers?: Marker[] }

const markerTime = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

/**
 * What a marker says: `name` for its button and tooltip ("alert: accuracy below 0.9 at
 * Nov 30, 14:05, critical"); `short`, the end of it, as the button's visible text.
 */
export function markerText(marker: Marker): { name: string; short: string } {
  const when = markerTime.format(new Date(marker.at * 1000));
  const short = marker.severity ? `${when}, ${marker.severity}` : when;
  return { name: `${marker.label} at ${short}`, short };
}

/** `highlighted`: the marker whose button has the focus (or the mouse), drawn emphasised. */
function overlayPlugin(overlays: () => Overlays, highlighted: () => Marker | null): uPlot.Plugin {
  return {
    hooks: {
      drawAxes: [(u: uPlot) => {
        // Under the series: the band.
        const band = overlays().band;
        if (!band) return;
        const ctx = u.ctx;
        const top = u.valToPos(Math.max(band[0], band[1]), "y", true);
        const bottom = u.valToPos(Math.min(band[0], band[1]), "y", true);
        ctx.save();
        ctx.fillStyle = css("--band");
        ctx.fillRect(u.bbox.left, top, u.bbox.width, bottom - top);
        ctx.restore();
      }],
      draw: [(u: uPlot) => {
        const { lines = [], markers = [] } = overlays();
        const ctx = u.ctx;
        const { left, top, width, height } = u.bbox;
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, top, width, height);
        ctx.clip();
        ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
        // uPlot leaves its axis labels' alignment on the context (right-aligned), which
        // would push each line's label out of the plot to its left.
        ctx.textAlign = "left";
        ctx.textBaseline = "alphabetic";
        // Every line first, then the labels over them: each on a patch of the card's
        // colour (readable over the data) just above its line or, when that would cover
        // a label placed already, just below it (moved down past any other label there).
        const lineHeight = 14 * devicePixelRatio;
        const placed: [number, number][] = [];
        const clash = (top: number) => placed.filter(([t, b]) => top < b && top + lineHeight > t);
        const drawn = lines.map((line) => ({ line, y: Math.round(u.valToPos(line.value, "y", true)), color: line.color ?? css("--threshold") }))
          .sort((a, b) => a.y - b.y);
        for (const { line, y, color } of drawn) {
          ctx.strokeStyle = color;
          ctx.lineWidth = devicePixelRatio;
          ctx.setLineDash(line.dashed ? [6 * devicePixelRatio, 4 * devicePixelRatio] : []);
          ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
        }
        ctx.setLineDash([]);
        const background = css("--card");
        for (const { line, y, color } of drawn) {
          let labelTop = y - lineHeight - devicePixelRatio;
          if (clash(labelTop).length > 0) {
            labelTop = y + 2 * devicePixelRatio;
            for (let hit = clash(labelTop); hit.length > 0; hit = clash(labelTop)) labelTop = Math.max(...hit.map(([, b]) => b)) + devicePixelRatio;
          }
          placed.push([labelTop, labelTop + lineHeight]);
          const textWidth = ctx.measureText(line.label).width;
          ctx.globalAlpha = 0.8;
          ctx.fillStyle = background;
          ctx.fillRect(left + 2 * devicePixelRatio, labelTop, textWidth + 4 * devicePixelRatio, lineHeight);
          ctx.globalAlpha = 1;
          ctx.fillStyle = color;
          ctx.fillText(line.label, left + 4 * devicePixelRatio, labelTop + lineHeight - 3 * devicePixelRatio);
        }
        for (const marker of markers) {
          const x = Math.round(u.valToPos(marker.at, "x", true));
          if (x < left || x > left + width) continue;
          const color = marker.kind === "fired" ? css("--bad") : marker.kind === "resolved" ? css("--good") : marker.kind === "acknowledged" ? css("--accent") : css("--warn");
          const emphasised = marker === highlighted();
          if (emphasised) {
            // A halo in the focus colour, as focused controls have.
            ctx.strokeStyle = css("--focus");
            ctx.lineWidth = 6 * devicePixelRatio;
            ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
          }
          ctx.strokeStyle = color; ctx.fillStyle = color;
          ctx.lineWidth = (emphasised ? 2.5 : 1.5) * devicePixelRatio;
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
          ctx.beginPath();
          const s = (emphasised ? 8 : 5) * devicePixelRatio;
          ctx.moveTo(x - s, top); ctx.lineTo(x + s, top); ctx.lineTo(x, top + s * 1.6); ctx.closePath(); ctx.fill();
        }
        ctx.restore();
      }],
    },
  };
}

/**
 * One line on a metric chart. `lo`/`hi` (aligned with `xs`) are each bucket's minimum and
 * maximum when the series was downsampled: drawn as a band behind the line, because the
 * line alone is the bucket means and a short spike inside a bucket would vanish in them.
 */
export interface ChartSeries {
  label: string; xs: number[]; ys: (number | null)[]; color?: string; dashed?: boolean;
  lo?: (number | null)[]; hi?: (number | null)[];
  /**
   * `share`: a fraction from 0 to 1 (a window's label coverage), drawn against a 0–100 %
   * axis of its own on the right, so it never stretches the metric's axis.
   */
  scale?: "share";
}

const percent = (v: number | null | undefined) => (v == null ? "—" : `${Math.round(v * 1000) / 10} %`);

/**
 * The chart's columns: x, then every series' line (so series i is uPlot series i + 1, as
 * the legend and `appendPoint` count them), then each range as its (max, min) pair.
 * uPlot needs all columns on one x axis; series with different timestamps are joined.
 */
function align(series: ChartSeries[]): { data: uPlot.AlignedData; ranges: Map<number, [number, number]> } {
  const tables = series.map((s) => (s.lo && s.hi ? [s.xs, s.ys, s.hi, s.lo] : [s.xs, s.ys]) as uPlot.AlignedData);
  const joined = (tables.length === 1 ? tables[0] : uPlot.join(tables)) as (number | null | undefined)[][];
  const lines: (number | null | undefined)[][] = [];
  const bounds: (number | null | undefined)[][] = [];
  const ranges = new Map<number, [number, number]>();
  let column = 1;
  series.forEach((s, i) => {
    lines.push(joined[column++]);
    if (s.lo && s.hi) {
      const at = 1 + series.length + bounds.length;
      ranges.set(i + 1, [at, at + 1]);
      bounds.push(joined[column++], joined[column++]);
    }
  });
  return { data: [joined[0], ...lines, ...bounds] as uPlot.AlignedData, ranges };
}

const format = (v: number | null | undefined) => (v == null ? "—" : Number(v.toPrecision(5)).toString());

export interface ChartOptions {
  /** Gets the range selected by dragging, in ms, so the page can fetch finer data. */
  onZoom?: (from: number, to: number) => void;
  /** The box's width when the page has measured it already (spares a layout read). */
  width?: number;
  /**
   * The time range shown, in ms, instead of the data's own: the range the page asked for,
   * so an alert fired after the last sample (as one just fired is) is on the chart.
   */
  timeWindow?: [number, number];
}

/** A metric chart: drag to zoom (double-click resets), hover shows values in the legend. */
export function metricChart(
  el: HTMLElement,
  series: ChartSeries[],
  overlays: Overlays,
  { onZoom, width: knownWidth, timeWindow }: ChartOptions = {},
): uPlot {
  const current: { overlays: Overlays; highlighted: Marker | null } = { overlays, highlighted: null };
  const width = knownWidth ?? Math.max(el.clientWidth, 280);
  const colors = [css("--accent"), css("--compare"), css("--warn")];
  const rangeColors = [css("--range"), css("--compare-range"), css("--range")];
  const { data, ranges } = align(series);
  // The legend gives a bucket's min and max beside its mean; the range series' own legend
  // rows are hidden (class u-range), so each version stays one entry.
  const lineValue = (u: uPlot, v: number | null, seriesIdx: number, idx: number | null) => {
    if (v == null) return "—";
    const range = ranges.get(seriesIdx);
    if (!range || idx == null) return format(v);
    const hi = u.data[range[0]][idx];
    const lo = u.data[range[1]][idx];
    return lo == null || hi == null || lo === hi ? format(v) : `${format(v)} (min ${format(lo)}, max ${format(hi)})`;
  };
  const rangeSeries: uPlot.Series[] = [];
  const bands: uPlot.Band[] = [];
  for (const [line, [hi, lo]] of ranges) {
    const fill = rangeColors[(line - 1) % rangeColors.length];
    for (const [idx, name] of [[hi, "max"], [lo, "min"]] as const) {
      // The band's edges get a hairline of the band's colour: a spike one bucket wide is
      // narrower than a pixel, and as fill alone it would be barely visible.
      rangeSeries[idx - 1 - series.length] = { label: `${series[line - 1].label} ${name}`, class: "u-range", stroke: fill, width: 1, points: { show: false }, spanGaps: false, value: (_u, v) => format(v) };
    }
    bands.push({ series: [hi, lo], fill });
  }
  const shares = series.some((s) => s.scale === "share");
  const opts: uPlot.Options = {
    width, height: 220,
    scales: {
      x: { time: true }, y: { range: (_u, min, max) => rangeWith(min, max, current.overlays) },
      ...(shares ? { share: { range: [0, 1] as uPlot.Range.MinMax } } : {}),
    },
    axes: [
      { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") } },
      { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") }, size: 60 },
      ...(shares ? [{ scale: "share", side: 1, size: 50, stroke: css("--muted"), grid: { show: false }, ticks: { stroke: css("--grid") },
        splits: () => [0, 0.25, 0.5, 0.75, 1], values: (_u: uPlot, ticks: number[]) => ticks.map((t) => `${t * 100} %`) }] : []),
    ],
    series: [
      { value: (_u, v) => (v == null ? "—" : new Date(v * 1000).toLocaleString()) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color ?? colors[i % colors.length],
        width: s.scale === "share" ? 1 : 1.5,
        dash: s.dashed ? [6, 4] : undefined,
        spanGaps: false,
        points: { show: s.xs.length < 200 },
        ...(s.scale === "share" ? { scale: "share", value: (_u: uPlot, v: number | null) => percent(v) } : { value: lineValue }),
      })),
      ...rangeSeries,
    ],
    bands,
    cursor: { drag: { x: true, y: false, setScale: true } },
    plugins: [overlayPlugin(() => current.overlays, () => current.highlighted)],
    hooks: {
      // A zoom or a live point changes which markers are on the chart.
      setScale: [(_u: uPlot, key: string) => { if (key === "x") markers?.render(); }],
      setCursor: [(u: uPlot) => markers?.hover(u.cursor.left ?? -1)],
      setSelect: [(u: uPlot) => {
        if (!onZoom || u.select.width < 5) return;
        const from = u.posToVal(u.select.left, "x") * 1000;
        const to = u.posToVal(u.select.left + u.select.width, "x") * 1000;
        onZoom(from, to);
      }],
    },
  };
  let markers: MarkerControls | undefined;
  const chart = new uPlot(opts, data, el);
  (chart as any)._ranges = ranges;
  if (timeWindow) chart.setScale("x", { min: timeWindow[0] / 1000, max: timeWindow[1] / 1000 });
  markers = markerControls(chart, el, current);
  markers.render();
  (chart as any)._markerList = markers.list;
  // Fit the chart to its box when the window (or phone orientation) changes.
  const observer = new ResizeObserver(() => {
    const w = Math.max(el.clientWidth, 280);
    if (Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height: 220 });
  });
  observer.observe(el);
  (chart as any)._observer = observer;
  // `rescale`: the y range is taken again, so lines that arrive later are on the chart
  // (setting x, even to what it is, makes uPlot range y anew; the time range stays).
  (chart as any).setOverlays = (next: Overlays, rescale = false) => {
    current.overlays = next;
    const { min, max } = chart.scales.x;
    if (rescale && min != null && max != null) chart.setScale("x", { min, max });
    else chart.redraw(false);
    markers?.render();
  };
  return chart;
}

interface MarkerControls { list: HTMLElement; render: () => void; hover: (cursorLeft: number) => void }

/**
 * The chart's markers as buttons in a list under it, each named by `markerText`, so the
 * keyboard reaches them and screen readers read them. Focusing or hovering a button
 * emphasises its marker, shows its tooltip and puts the chart's cursor there (the legend
 * then gives the values at that moment); the mouse over the chart near a marker shows
 * the same tooltip.
 */
function markerControls(chart: uPlot, el: HTMLElement, current: { overlays: Overlays; highlighted: Marker | null }): MarkerControls {
  const tip = h("div", { class: "marker-tip", "aria-hidden": "true", hidden: true });
  chart.over.append(tip);
  const list = h("ul", { class: "chart-markers", "aria-label": "Markers on this chart", hidden: true });
  el.append(list);
  let shownKey = "";

  const show = (marker: Marker | null) => {
    current.highlighted = marker;
    chart.redraw(false);
    tip.hidden = !marker;
    if (!marker) return;
    tip.textContent = markerText(marker).name;
    // Centred on the marker, but inside the plot (a tooltip past the edge would widen the page).
    const x = chart.valToPos(marker.at, "x");
    const room = chart.over.clientWidth;
    tip.style.left = `${Math.min(Math.max(x - tip.offsetWidth / 2, 0), Math.max(room - tip.offsetWidth, 0))}px`;
  };
  const point = (marker: Marker) => {
    show(marker);
    chart.setCursor({ left: chart.valToPos(marker.at, "x"), top: chart.over.clientHeight / 2 });
  };

  const render = () => {
    const { min, max } = chart.scales.x;
    const visible = (current.overlays.markers ?? []).filter((m) => min == null || max == null || (m.at >= min && m.at <= max));
    const key = JSON.stringify(visible);
    if (key === shownKey) return;
    shownKey = key;
    // A redraw keeps the focus on the marker that had it.
    const focused = list.contains(document.activeElement) ? document.activeElement?.getAttribute("aria-label") : null;
    if (current.highlighted && !visible.includes(current.highlighted)) show(null);
    list.hidden = visible.length === 0;
    clear(list, visible.map((marker) => {
      const { name, short } = markerText(marker);
      const button = h("button", {
        type: "button", class: `marker m-${marker.kind}`, "aria-label": name,
        onfocus: () => point(marker), onclick: () => point(marker), onmouseenter: () => show(marker),
        onblur: () => show(null), onmouseleave: () => { if (document.activeElement !== button) show(null); },
      }, short);
      const link = marker.href ? h("a", { class: "marker-link", href: marker.href, "aria-label": `open ${name}` }, "open") : null;
      return h("li", null, button, link);
    }));
    if (focused) list.querySelector<HTMLElement>(`button[aria-label="${CSS.escape(focused)}"]`)?.focus();
  };

  const hover = (cursorLeft: number) => {
    // The keyboard's marker stays until the focus leaves it.
    if (list.contains(document.activeElement)) return;
    const near = cursorLeft < 0 ? null
      : (current.overlays.markers ?? []).find((m) => Math.abs(chart.valToPos(m.at, "x") - cursorLeft) <= 6) ?? null;
    if (near !== current.highlighted) show(near);
  };

  return { list, render, hover };
}

/** The y range covers the data and every overlay line, so thresholds are never off-chart. */
function rangeWith(min: number | null, max: number | null, overlays: Overlays): uPlot.Range.MinMax {
  let lo = min ?? Infinity;
  let hi = max ?? -Infinity;
  for (const line of overlays.lines ?? []) { lo = Math.min(lo, line.value); hi = Math.max(hi, line.value); }
  if (overlays.band) { lo = Math.min(lo, ...overlays.band); hi = Math.max(hi, ...overlays.band); }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 1;
  return [lo - pad, hi + pad];
}

export function destroyChart(chart: uPlot): void {
  (chart as any)._observer?.disconnect();
  (chart as any)._markerList?.remove();
  chart.destroy();
}

/**
 * Appends a live point to series `seriesIndex` without refetching; its range (if drawn)
 * gets the point as both min and max. A point not after the chart's last one (a backfill)
 * is left for the next fetch: uPlot needs x in ascending order.
 */
export function appendPoint(chart: uPlot, seriesIndex: number, x: number, y: number): void {
  const xs = chart.data[0];
  if (xs.length > 0 && x <= xs[xs.length - 1]) return;
  const range: [number, number] | undefined = (chart as any)._ranges?.get(seriesIndex);
  const data = chart.data.map((column) => Array.from(column as ArrayLike<number | null>)) as (number | null)[][];
  data[0].push(x);
  for (let i = 1; i < data.length; i++) data[i].push(i === seriesIndex || range?.includes(i) ? y : null);
  chart.setData(data as uPlot.AlignedData, false);
  const xMin = chart.scales.x.min ?? x;
  chart.setScale("x", { min: xMin, max: Math.max(chart.scales.x.max ?? x, x) });
}
