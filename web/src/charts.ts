// Charts are uPlot (small, fast with 40k+ points, canvas). What uPlot does not draw by
// itself — the baseline band, rule lines and alert markers — is drawn by a uPlot plugin
// on its canvas in data coordinates, so zooming and resizing keep them in place.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

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

export interface Marker { at: number; kind: "fired" | "resolved" | "preview"; label: string }
export interface Line { value: number; label: string; dashed?: boolean; color?: string }
export interface Overlays { band?: [number, number] | null; lines?: Line[]; markers?: Marker[] }

function overlayPlugin(overlays: () => Overlays): uPlot.Plugin {
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
          const color = marker.kind === "fired" ? css("--bad") : marker.kind === "resolved" ? css("--good") : css("--warn");
          ctx.strokeStyle = color; ctx.fillStyle = color;
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
          ctx.beginPath();
          const s = 5 * devicePixelRatio;
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
}

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

/**
 * A metric chart: drag to zoom (double-click resets), hover shows values in the legend.
 * `onZoom` gets the selected range in ms so the page can fetch finer data. `knownWidth`
 * spares a layout read when the page has measured the box already.
 */
export function metricChart(
  el: HTMLElement,
  series: ChartSeries[],
  overlays: Overlays,
  onZoom?: (from: number, to: number) => void,
  knownWidth?: number,
): uPlot {
  const current = { overlays };
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
  const opts: uPlot.Options = {
    width, height: 220,
    scales: { x: { time: true }, y: { range: (_u, min, max) => rangeWith(min, max, current.overlays) } },
    axes: [
      { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") } },
      { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") }, size: 60 },
    ],
    series: [
      { value: (_u, v) => (v == null ? "—" : new Date(v * 1000).toLocaleString()) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color ?? colors[i % colors.length],
        width: 1.5,
        dash: s.dashed ? [6, 4] : undefined,
        spanGaps: false,
        points: { show: s.xs.length < 200 },
        value: lineValue,
      })),
      ...rangeSeries,
    ],
    bands,
    cursor: { drag: { x: true, y: false, setScale: true } },
    plugins: [overlayPlugin(() => current.overlays)],
    hooks: {
      setSelect: [(u: uPlot) => {
        if (!onZoom || u.select.width < 5) return;
        const from = u.posToVal(u.select.left, "x") * 1000;
        const to = u.posToVal(u.select.left + u.select.width, "x") * 1000;
        onZoom(from, to);
      }],
    },
  };
  const chart = new uPlot(opts, data, el);
  (chart as any)._ranges = ranges;
  // Fit the chart to its box when the window (or phone orientation) changes.
  const observer = new ResizeObserver(() => {
    const w = Math.max(el.clientWidth, 280);
    if (Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height: 220 });
  });
  observer.observe(el);
  (chart as any)._observer = observer;
  // `rescale`: the y range is taken again, so lines that arrive later are on the chart.
  (chart as any).setOverlays = (next: Overlays, rescale = false) => {
    current.overlays = next;
    if (rescale) chart.setData(chart.data);
    else chart.redraw(false);
  };
  return chart;
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
