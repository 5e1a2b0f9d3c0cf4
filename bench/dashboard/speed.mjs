// Dashboard speed, measured in the browser (Performance API marks set by the app:
// "route" when navigation starts, "ready" when the page is interactive / charts drawn).
//
//   cargo build -p modelwatch && node bench/dashboard/speed.mjs
//   BROWSER=firefox RUNS=9 MODELWATCH_BIN=target/release/modelwatch node bench/dashboard/speed.mjs
//
// Fills an empty server with 1,000 model versions (100 models × 10 versions, a day of
// hourly accuracy each) and one version with four 30-day per-minute series (4 × 43,200
// samples), then loads the overview and that model page, cold and by in-app navigation.
// Targets (issue 6): overview interactive ≤ 1 s; model page charts ≤ 500 ms.
import { startServer, startBrowser, json } from "../../web/e2e/harness.mjs";

const RUNS = Number(process.env.RUNS ?? 5);
const server = await startServer({ demo: false });
// A cold load goes through about:blank in the same tab. Chromium's back/forward cache
// would keep every left page's renderer, so each load would pay for starting a new
// one; without it (as Playwright ran it for the first figures) the load measures the
// page, not process start-up.
const browserName = process.env.BROWSER ?? "chromium";
const browser = await startBrowser(browserName, { args: browserName === "chromium" ? ["--disable-features=BackForwardCache"] : [] });
try {
  const now = Date.now();
  const post = (samples) => json(`${server.url}/api/v1/metrics`, { method: "POST", body: JSON.stringify({ samples }) });
  let batch = [];
  for (let m = 0; m < 100; m++) {
    for (let v = 0; v < 10; v++) {
      for (let hour = 24; hour > 0; hour--) {
        batch.push({ model: `model_${String(m).padStart(3, "0")}`, version: `v${v}`, metric: "accuracy", value: 0.9 + 0.05 * Math.sin(hour + m + v), timestamp: now - hour * 3600e3 });
      }
    }
    if (batch.length >= 10_000) { await post(batch); batch = []; }
  }
  if (batch.length) await post(batch);
  const metrics = ["accuracy", "precision", "recall", "latency"];
  for (const metric of metrics) {
    for (let start = 0; start < 43_200; start += 10_000) {
      const samples = [];
      for (let i = start; i < Math.min(start + 10_000, 43_200); i++) {
        const value = metric === "latency" ? 40 + 5 * Math.sin(i / 300) + Math.random() : 0.9 + 0.03 * Math.sin(i / 1440) + Math.random() * 0.01;
        samples.push({ model: "big_model", version: "v1", metric, value, timestamp: now - (43_200 - i) * 60e3 });
      }
      await post(samples);
    }
  }
  const page = await browser.newPage();
  // Requests in flight, but the event stream, which never ends.
  const inFlight = new Set();
  page.on("request", (r) => { if (!r.url().endsWith("/api/v1/events")) inFlight.add(r); });
  for (const done of ["requestfinished", "requestfailed"]) page.on(done, (r) => inFlight.delete(r));
  const settled = async (url) => {
    let quietSince = Date.now();
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 50));
      if (inFlight.size > 0) quietSince = Date.now();
      else if (Date.now() - quietSince >= 250) return;
    }
    throw new Error(`${url}: still loading after 30 s: ${[...inFlight].map((r) => r.url()).join(", ")}`);
  };
  const measure = async (url, inApp) => {
    if (inApp) {
      await page.evaluate((hash) => { location.hash = hash; }, url.split("#")[1]);
    } else {
      await page.goto("about:blank");
      await page.goto(url);
    }
    try {
      await page.waitForFunction(() => performance.getEntriesByName("ready").length > 0, { timeout: 30_000 });
    } catch (error) {
      const state = await page.evaluate(() => ({ url: location.href, marks: performance.getEntriesByType("mark").map((m) => m.name), main: document.querySelector("main")?.innerHTML.slice(0, 500) }));
      throw new Error(`${url}: no "ready" mark in 30 s: ${JSON.stringify(state)}`, { cause: error });
    }
    // Let the page finish what it does after drawing (the degradation check, lazy rows),
    // so the next load does not share the server with this one. The event stream stays open.
    await settled(url);
    if (process.env.DEBUG) {
      console.error(JSON.stringify(await page.evaluate(() => performance.getEntries()
        .filter((e) => e.entryType !== "paint" && e.entryType !== "largest-contentful-paint")
        .map((e) => `${e.entryType} ${e.name.replace(location.origin, "").slice(0, 60)} ${Math.round(e.startTime)}→${Math.round(e.responseEnd ?? e.startTime + e.duration)}`))));
    }
    return page.evaluate((inApp) => {
      const ready = performance.getEntriesByName("ready")[0].startTime;
      return inApp ? ready - performance.getEntriesByName("route")[0].startTime : ready;
    }, inApp);
  };
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const results = {};
  for (const [name, url, inApp] of [
    ["overview, 1,000 versions, cold load", `${server.url}/#/`, false],
    ["overview, 1,000 versions, in-app navigation", `${server.url}/#/`, true],
    ["model page, 4 × 30-day per-minute series, cold load", `${server.url}/#/model/big_model/v1?range=30d`, false],
    ["model page, 4 × 30-day per-minute series, in-app navigation", `${server.url}/#/model/big_model/v1?range=30d`, true],
  ]) {
    const times = [];
    if (process.env.DEBUG) console.error("measuring", name);
    for (let i = 0; i < RUNS; i++) {
      if (inApp) await page.evaluate(() => { location.hash = "#/rules"; });
      times.push(await measure(url, inApp));
    }
    results[name] = { median_ms: Math.round(median(times)), max_ms: Math.round(Math.max(...times)), runs: times.map(Math.round) };
  }
  console.log(JSON.stringify(results, null, 2));
} finally {
  await browser.stop();
  await server.stop();
}
