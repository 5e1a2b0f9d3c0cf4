// End-to-end: the real `modelwatch serve --demo`, a real browser, the dashboard as a
// person uses it. Every scenario runs in each browser of E2E_BROWSERS (default: Debian's
// chromium and firefox-esr), each browser against its own server, so one browser's
// acknowledgements and rules cannot change what the other sees. Screenshots of every
// page go to test-artifacts/<browser>-<page>.png.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { readFileSync } from "node:fs";
import { startServer, startBrowser, selectedBrowsers, json, list, artifacts, repo, VIEWPORT } from "./harness.mjs";

for (const browserName of selectedBrowsers()) {
  describe(browserName, () => {
    let server, browser, page;
    const errors = [];

    before(async () => {
      server = await startServer();
      browser = await startBrowser(browserName);
      page = await browser.newPage();
      page.on("pageerror", (e) => errors.push(String(e)));
    });
    after(async () => {
      await browser?.stop();
      await server?.stop();
    });

    async function shot(name) {
      // From the top: Firefox draws the sticky header where the page was scrolled to.
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(artifacts, `${browserName}-${name}.png`), fullPage: true });
    }

    /**
     * In-app navigation, as following a link does (the first load is a page.goto).
     * Resolves once the router has handled it: `hashchange` comes as a task of its own,
     * and until it runs the previous page (and its `data-ready`) is still shown, so a
     * `ready()` straight after setting the hash could find the page being left.
     */
    async function go(hash) {
      await page.evaluate((h) => new Promise((resolve) => {
        if (location.hash === h) return resolve();
        // After the router's own listener, which was added first.
        addEventListener("hashchange", () => resolve(), { once: true });
        location.hash = h;
      }), hash);
    }

    /** Waits until the page shown is drawn: `data-ready` is cleared on every route. */
    const ready = (selector = "") => page.waitForSelector(`main[data-ready] ${selector}`.trim());

    /** Clicks the button labelled `label` inside `scope`, as a mouse does. */
    async function clickButton(scope, label) {
      // A live event may redraw the row between finding the button and clicking it (the
      // alert changed meanwhile): find it again then.
      for (let attempt = 1; ; attempt++) {
        const handle = await page.waitForFunction((scope, label) =>
          [...document.querySelectorAll(`${scope} button`)].find((b) => b.textContent.trim() === label), {}, scope, label);
        try {
          await handle.asElement().click();
          return;
        } catch (error) {
          // A detached button, or one whose row was just replaced, is not clickable.
          if (attempt >= 5 || !/detached|not clickable/i.test(error.message)) throw error;
        }
      }
    }

    /**
     * Every alert GET /api/v1/alerts lists for `query`, through all its pages, as the
     * alerts page reads them; with the first page's `total` and `by_severity`.
     */
    async function allAlerts(query = "") {
      const alerts = [];
      let first = null;
      for (let cursor = ""; cursor != null;) {
        const page = await json(`${server.url}/api/v1/alerts?${query}&limit=1000${cursor}`);
        first ??= page;
        alerts.push(...page.alerts);
        cursor = page.next_cursor == null ? null : `&cursor=${encodeURIComponent(page.next_cursor)}`;
      }
      return { alerts, total: first.total, bySeverity: first.by_severity };
    }

    /** The severity badges above the alerts table, as {severity: count}, and its total. */
    const alertCounts = () => page.$eval("main .summary", (box) => ({
      total: Number(box.querySelector("[data-total]")?.dataset.total),
      bySeverity: Object.fromEntries([...box.querySelectorAll(".badge")].map((b) => {
        const [count, severity] = b.textContent.split(" ");
        return [severity, Number(count)];
      })),
    }));

    /** The theme through the header's switch, as a viewer picks it (it redraws the page). */
    async function theme(wanted) {
      const current = await page.evaluate(() => document.documentElement.dataset.theme
        ?? (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
      if (current !== wanted) await page.click("#theme");
      assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), wanted);
    }

    test("the server ships the dashboard committed in crates/dashboard/assets", async () => {
      // A build without Node embeds the committed files; this binary (built with
      // web/node_modules) embeds a fresh build of web/. Both must be the same page.
      const served = await (await fetch(`${server.url}/`)).text();
      const committed = readFileSync(join(repo, "crates", "dashboard", "assets", "index.html"), "utf8");
      assert.equal(served, committed, "web/ changed without scripts/build-dashboard: run it and commit crates/dashboard/assets");
    });

    test("overview lists the demo models with their health grades", async () => {
      await page.goto(`${server.url}/`);
      await ready("tbody tr");
      const rows = await page.$$eval("tbody tr", (trs) => trs.map((tr) => `${tr.dataset.model} ${tr.dataset.version}`));
      for (const expected of ["fraud_detector v2.1", "fraud_detector v2.0", "recommender v3.0", "churn_regressor v1.5"]) {
        assert.ok(rows.includes(expected), `${expected} in ${rows}`);
      }
      // Grades and sparklines load per visible row.
      await page.waitForFunction(() => document.querySelectorAll("tbody [class*=b-grade-]").length >= 4, { timeout: 15_000 });
      await page.waitForFunction(() => document.querySelectorAll("td.spark canvas").length >= 4, { timeout: 15_000 });
      await page.waitForSelector("#live[data-state=live]");
      await shot("overview");
      await theme("dark");
      await ready("tbody tr");
      await page.waitForFunction(() => document.querySelectorAll("td.spark canvas").length >= 4, { timeout: 15_000 });
      await shot("overview-dark");
      await theme("light");
      assert.deepEqual(errors, []);
    });

    test("a model page draws a chart per metric with data points", async () => {
      await go("#/model/fraud_detector/v2.1?range=7d");
      await ready("figure canvas");
      const metrics = await page.$$eval("figure[data-metric]", (fs) => fs.map((f) => f.dataset.metric));
      assert.deepEqual([...metrics].sort(), ["accuracy", "latency", "precision", "recall"]);
      const captions = await page.$$eval("figure figcaption", (cs) => cs.map((c) => c.textContent));
      for (const caption of captions) assert.match(caption, /\b[1-9]\d* samples?\b/, caption);
      // The legend shows a value under the cursor: hover the middle of the first chart.
      const over = await page.$("figure .u-over");
      const box = await over.boundingBox();
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.waitForFunction(() => /\d/.test(document.querySelector("figure .u-legend .u-series:nth-child(2) .u-value")?.textContent ?? ""));
      await shot("model");
      await theme("dark");
      await ready("figure canvas");
      await shot("model-dark");
      await theme("light");
      await ready("figure canvas");
      assert.deepEqual(errors, []);
    });

    test("the model page is usable with the keyboard alone", async () => {
      // A fresh document, so the focus starts at the top of the page.
      await page.goto("about:blank");
      await page.goto(`${server.url}/#/model/fraud_detector/v2.1`);
      await ready("figure canvas");
      // The stream says "live" at once (not at its first keep-alive, 15 s on).
      await page.waitForSelector("#live[data-state=live]", { timeout: 5_000 });
      // The first Tab reaches the skip link; following it lands in the page, not on a route.
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate(() => document.activeElement?.className), "skip");
      await page.keyboard.press("Enter");
      assert.equal(await page.evaluate(() => document.activeElement?.id), "main");
      assert.match(await page.evaluate(() => location.hash), /^#\/model\/fraud_detector\/v2\.1/);
      // From there, Tab to the "7d" range button and press it.
      let reached = false;
      for (let i = 0; i < 30 && !reached; i++) {
        await page.keyboard.press("Tab");
        reached = await page.evaluate(() => document.activeElement?.getAttribute("data-range") === "7d");
      }
      assert.ok(reached, "Tab reaches the 7d range button");
      // Whoever uses the keyboard sees where the focus is.
      assert.notEqual(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle), "none");
      await page.keyboard.press("Enter");
      await page.waitForSelector("button[data-range='7d'][aria-pressed=true]");
      await page.waitForFunction(() => location.hash.includes("range=7d"));
      await ready("figure canvas");
      await shot("model-keyboard");
      assert.deepEqual(errors, []);
    });

    test("pages are readable on a phone (390 × 844)", async () => {
      await page.setViewport({ width: 390, height: 844 });
      try {
        for (const [name, hash, selector] of [
          ["overview", "#/", "tbody tr"],
          ["model", "#/model/fraud_detector/v2.1", "figure canvas"],
          ["alerts", "#/alerts", ""],
        ]) {
          await go(hash);
          await ready(selector);
          if (name === "overview") await page.waitForFunction(() => document.querySelectorAll("td.spark canvas").length >= 4, { timeout: 15_000 });
          // The page itself never scrolls sideways (tables: see the 375 px scenario).
          const width = await page.evaluate(() => document.documentElement.scrollWidth);
          assert.ok(width <= 390, `${name}: the page is ${width} px wide on a 390 px screen`);
          if (name === "overview") {
            // The overview's own table fits too: its less important columns are hidden.
            const [inner, box] = await page.$eval("main .scroll", (el) => [el.scrollWidth, el.clientWidth]);
            assert.ok(inner <= box, `the overview table is ${inner} px wide in a ${box} px box`);
            const headers = await page.$$eval("table.overview thead th", (ths) => ths.filter((th) => th.offsetParent !== null).map((th) => th.textContent));
            assert.deepEqual(headers, ["Model", "Version", "Health", "Open alerts"]);
          }
          await shot(`${name}-phone`);
        }
        await theme("dark");
        await ready();
        await shot("alerts-phone-dark");
        await theme("light");
      } finally {
        await page.setViewport(VIEWPORT);
      }
      assert.deepEqual(errors, []);
    });

    test("on a 375 px phone no table scrolls sideways: rows are cards, each cell labelled", async () => {
      await page.setViewport({ width: 375, height: 800 });
      const problems = [];
      try {
        for (const [name, hash, selector] of [
          ["overview", "#/", "tbody tr"],
          // The degradation table comes after the charts.
          ["model", "#/model/fraud_detector/v2.1", "section[aria-labelledby=deg-h] tbody tr"],
          ["alerts", "#/alerts?status=", "tbody tr[data-alert]"],
          ["rules", "#/rules", "tbody tr[data-rule]"],
        ]) {
          await go(hash);
          await ready();
          await page.waitForSelector(selector);
          // The overview's grades load per row, and widen their column.
          if (name === "overview") await page.waitForFunction(() => document.querySelectorAll("tbody [class*=b-grade-]").length >= 4, { timeout: 15_000 });
          const [wide, innerWidth] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
          if (wide > innerWidth) problems.push(`${name}: the page is ${wide} px wide on a ${innerWidth} px screen`);
          const boxes = await page.$$eval("main .scroll", (els) => els.map((el) => [el.scrollWidth, el.clientWidth]));
          assert.ok(boxes.length > 0, `${name} has a table`);
          for (const [inner, box] of boxes) if (inner > box) problems.push(`${name}: a table is ${inner} px wide in a ${box} px box`);
          await shot(`${name}-375`);
        }
        assert.deepEqual(problems, []);
        // The alerts' cards name each value after its column, and every action is a
        // button on the screen that a tap reaches (nothing covers it).
        await go("#/alerts?status=");
        await ready("tbody tr[data-alert]");
        const labels = await page.$eval("tbody tr[data-alert]", (tr) =>
          [...tr.cells].filter((td) => td.offsetParent !== null).map((td) => [td.dataset.label, getComputedStyle(td, "::before").content]));
        assert.deepEqual(labels.slice(0, 4).map(([label]) => label), ["Severity", "Status", "Alert", "Model"]);
        // Chromium gives the label's text, Firefox the expression that makes it.
        for (const [label, content] of labels) assert.ok([`"${label}"`, "attr(data-label)"].includes(content), `${label}: ${content}`);
        const buttons = await page.$$eval("tbody tr[data-alert] td.actions button", (bs) => bs.map((b) => {
          b.scrollIntoView({ block: "center" });
          const r = b.getBoundingClientRect();
          const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
          return { text: b.textContent, left: r.left, right: r.right, width: r.width, hit: hit?.outerHTML.slice(0, 120), reached: b === hit || b.contains(hit) };
        }));
        assert.ok(buttons.some((b) => b.text === "Acknowledge") && buttons.some((b) => b.text === "Resolve"), JSON.stringify(buttons));
        for (const b of buttons) assert.ok(b.reached && b.width > 0 && b.left >= 0 && b.right <= 375, `${b.text}: ${JSON.stringify(b)}`);
      } finally {
        await page.setViewport(VIEWPORT);
      }
      assert.deepEqual(errors, []);
    });

    test("the keyboard reaches a chart's alert markers, named for screen readers", async () => {
      const alerts = list(await json(`${server.url}/api/v1/alerts?model=fraud_detector&version=v2.1`), "alerts");
      assert.ok(alerts.length > 0, "the demo has alerts on fraud_detector v2.1");
      await page.goto("about:blank");
      await page.goto(`${server.url}/#/model/fraud_detector/v2.1?range=7d`);
      await ready("figure canvas");
      await page.keyboard.press("Tab");
      await page.keyboard.press("Enter"); // the skip link: into the page
      let reached = false;
      for (let i = 0; i < 60 && !reached; i++) {
        await page.keyboard.press("Tab");
        reached = await page.evaluate(() => document.activeElement?.matches(".chart-markers button") ?? false);
      }
      assert.ok(reached, "Tab reaches a marker of a chart");
      const focused = await page.evaluate(() => {
        const button = document.activeElement;
        const figure = button.closest("figure");
        const tip = figure.querySelector(".marker-tip");
        return { name: button.getAttribute("aria-label"), metric: figure.dataset.metric, outline: getComputedStyle(button).outlineStyle,
          tip: tip && !tip.hidden ? tip.textContent : null };
      });
      // "alert: <the alert's message> at <time>, <severity>"
      const match = /^alert: (.+) at .+, (critical|high|medium|low)$/.exec(focused.name ?? "");
      assert.ok(match, `the marker's accessible name describes the alert: ${focused.name}`);
      assert.ok(alerts.some((a) => a.metric === focused.metric && a.message === match[1] && a.severity === match[2]),
        `${focused.name} is an alert of ${focused.metric}: ${JSON.stringify(alerts.map((a) => [a.metric, a.message, a.severity]))}`);
      assert.notEqual(focused.outline, "none", "the focused marker shows its focus");
      // Focused, its marker shows the same words on the chart as a tooltip.
      assert.equal(focused.tip, focused.name);
      await shot("model-marker-keyboard");
      assert.deepEqual(errors, []);
    });

    test("an alert's marker on the model page links to the alert's page", async () => {
      await page.goto("about:blank");
      await page.goto(`${server.url}/#/model/fraud_detector/v2.1?range=7d`);
      await ready("figure canvas");
      await page.waitForSelector(".chart-markers a.marker-link");
      const href = await page.$eval(".chart-markers a.marker-link", (a) => a.getAttribute("href"));
      const id = /^#\/alerts\/(alert_[0-9a-f]+)$/.exec(href ?? "")?.[1];
      assert.ok(id, `the marker links to an alert's page: ${href}`);
      await page.$eval(".chart-markers a.marker-link", (a) => a.click());
      await page.waitForFunction((id) => location.hash === `#/alerts/${id}`, {}, id);
      await page.waitForFunction((id) => document.querySelector("main")?.textContent.includes(id), {}, id);
      assert.deepEqual(errors, []);
    });

    test("a sample POSTed to the API appears on an open model page without reload", async () => {
      await go("#/model/fraud_detector/v2.1");
      await ready("figure[data-metric=accuracy] canvas");
      await page.waitForSelector("#live[data-state=live]");
      const marker = await page.evaluate(() => (window.__marker = Math.random()));
      await json(`${server.url}/api/v1/metrics`, { method: "POST", body: JSON.stringify({ model: "fraud_detector", version: "v2.1", metric: "accuracy", value: 0.5 }) });
      await page.waitForSelector("figure[data-metric=accuracy][data-live]", { timeout: 10_000 });
      assert.equal(await page.evaluate(() => window.__marker), marker, "the page was not reloaded");
      await shot("model-live");
    });

    test("a page left while it still loads leaves the next page's address alone", async () => {
      // The address changes a task before the router hears of it. Here the overview's list
      // of models arrives just then: the overview, not yet told it was left, draws its
      // table and must not rewrite the model page's query (its range) with its own.
      const target = "#/model/fraud_detector/v2.1?range=7d";
      await go("#/model/fraud_detector/v2.1");
      await ready();
      await page.evaluate((target) => new Promise((resolve) => {
        const fetchBefore = window.fetch;
        window.fetch = async (...args) => {
          const response = await fetchBefore(...args);
          if (new URL(String(args[0]), location.href).pathname === "/api/v1/models") {
            window.fetch = fetchBefore;
            const text = response.text.bind(response);
            response.text = async () => {
              const body = await text();
              addEventListener("hashchange", () => resolve(), { once: true });
              location.hash = target;
              return body;
            };
          }
          return response;
        };
        location.hash = "#/";
      }), target);
      await ready("figure[data-metric=accuracy] canvas");
      assert.equal(await page.evaluate(() => location.hash), target);
      assert.equal(await page.$eval("button[data-range='7d']", (b) => b.getAttribute("aria-pressed")), "true");
      assert.deepEqual(errors, []);
    });

    test("the model page shows one dataset at a time, chosen with its dataset selector", async () => {
      // Canary samples of a metric the default dataset has too, at times of their own.
      const now = Date.now();
      const samples = Array.from({ length: 5 }, (_, i) => ({
        model: "fraud_detector", version: "v2.1", metric: "accuracy", value: 0.42, timestamp: now - (i + 1) * 60_000, dataset: "canary",
      }));
      await json(`${server.url}/api/v1/metrics`, { method: "POST", body: JSON.stringify({ samples }) });
      await go("#/");
      await go("#/model/fraud_detector/v2.1");
      await ready("figure[data-metric=accuracy] canvas");
      const select = "select[name=dataset]";
      assert.deepEqual(await page.$$eval(`${select} option`, (os) => os.map((o) => o.value)), ["default", "canary"]);
      assert.equal(await page.$eval(select, (s) => s.value), "default");
      const accuracy = () => page.$eval("figure[data-metric=accuracy] .chart", (box) => [...box.uplot.data[1]].filter((v) => v != null));
      assert.ok(!(await accuracy()).includes(0.42), "the default dataset's chart holds no canary sample");

      await page.select(select, "canary");
      await page.waitForFunction(() => /dataset=canary/.test(location.hash));
      await page.waitForFunction(() => /\b5 samples/.test(document.querySelector("figure[data-metric=accuracy] figcaption")?.textContent ?? ""), { timeout: 10_000 });
      assert.deepEqual(await accuracy(), [0.42, 0.42, 0.42, 0.42, 0.42]);
      // The other metrics have no canary samples: not drawn, named once below the charts.
      await page.waitForFunction(() => /\blatency\b.*: no samples in dataset canary\./.test(document.querySelector("main p.absent")?.textContent ?? ""));
      assert.ok(await page.$eval("figure[data-metric=latency]", (f) => f.hidden), "latency's empty chart is hidden");
      assert.ok(!(await page.$eval("figure[data-metric=accuracy]", (f) => f.hidden)));
      await shot("model-dataset");

      // The choice is in the address: a reload shows the same dataset.
      await page.reload();
      await ready("figure[data-metric=accuracy] canvas");
      assert.equal(await page.$eval(select, (s) => s.value), "canary");
      await page.select(select, "default");
      await page.waitForFunction(() => !/dataset=/.test(location.hash));
      await page.waitForFunction(() => !/\b5 samples/.test(document.querySelector("figure[data-metric=accuracy] figcaption")?.textContent ?? "5 samples"));
      assert.ok(!(await page.$eval("figure[data-metric=latency]", (f) => f.hidden)), "back in the default dataset, latency is drawn");
      assert.ok(await page.$eval("main p.absent", (p) => p.hidden));
      assert.deepEqual(errors, []);
    });

    test("metrics computed from predictions show how complete each window is", async () => {
      // Two closed hourly windows: the older fully labelled (judged on its coverage), the
      // newer half labelled, under the 80 % minimum, judged once its 30 minutes of label
      // delay ran out.
      const hour = 3_600_000;
      const start = Math.floor(Date.now() / hour) * hour - 3 * hour;
      await json(`${server.url}/api/v1/models/fraud_detector/prediction-config`, {
        method: "PUT", body: JSON.stringify({ window: "1h", task: "classification", threshold: 0.5, min_coverage: 0.8, max_label_delay: "30m" }),
      });
      const predictions = [0, 1].flatMap((w) => Array.from({ length: 10 }, (_, i) => ({
        id: `e2e-${browserName}-${w}-${i}`, model: "fraud_detector", version: "v2.1", timestamp: start + w * hour + i * 60_000, score: i % 2 ? 0.9 : 0.1,
      })));
      await json(`${server.url}/api/v1/predictions`, { method: "POST", body: JSON.stringify({ predictions }) });
      const labels = predictions.filter((p, i) => i < 10 || i % 2 === 0).map((p, i) => ({ id: p.id, model: "fraud_detector", label: i % 3 === 0 ? 0 : 1 }));
      await json(`${server.url}/api/v1/predictions/labels`, { method: "POST", body: JSON.stringify({ labels }) });

      await go("#/");
      await go("#/model/fraud_detector/v2.1?dataset=predictions");
      await ready("figure[data-metric=accuracy] canvas");
      assert.equal(await page.$eval("select[name=dataset]", (s) => s.value), "predictions");
      const caption = await page.$eval("figure[data-metric=accuracy] figcaption", (f) => f.textContent);
      assert.match(caption, /newest point 50 % labelled \(under the 80 % minimum: judged when its label delay ran out\)/);
      // Each point's coverage is a line of the chart, against its own 0–100 % axis.
      const coverage = await page.$eval("figure[data-metric=accuracy] .chart", (box) => {
        const u = box.uplot;
        const at = u.series.findIndex((s) => s.label === "labelled");
        return { scale: u.series[at]?.scale, values: [...u.data[at]].filter((v) => v != null) };
      });
      assert.deepEqual(coverage, { scale: "share", values: [1, 0.5] });
      // Neither the coverage itself nor drift gets a coverage line.
      const lines = await page.$eval("figure[data-metric=label_coverage] .chart", (box) => box.uplot.series.map((s) => s.label));
      assert.ok(!lines.includes("labelled"), `label_coverage's chart: ${lines}`);
      await shot("model-predictions");
      await page.select("select[name=dataset]", "default");
      await page.waitForFunction(() => !/dataset=/.test(location.hash));
      assert.deepEqual(errors, []);
    });

    test("acknowledging and then resolving an alert from the page changes it in the API", async () => {
      const open = list(await json(`${server.url}/api/v1/alerts`), "alerts").filter((a) => a.status === "active");
      assert.ok(open.length > 0, "the demo has an active alert");
      const id = open[0].id;
      const row = `tr[data-alert="${id}"]`;
      await go("#/alerts");
      await page.waitForSelector(row);
      await page.locator("#who").fill("e2e@example.com");
      await clickButton(row, "Acknowledge");
      await page.waitForSelector(`${row}[data-status=acknowledged]`);
      let alert = await json(`${server.url}/api/v1/alerts/${encodeURIComponent(id)}`);
      assert.equal((alert.alert ?? alert).status, "acknowledged");
      await page.locator(`${row} .resolve input`).fill("fixed by the e2e test");
      await clickButton(row, "Resolve");
      await page.waitForFunction((row) => !document.querySelector(row) || document.querySelector(row).dataset.status === "resolved", {}, row);
      alert = await json(`${server.url}/api/v1/alerts/${encodeURIComponent(id)}`);
      assert.equal((alert.alert ?? alert).status, "resolved");
      await page.select("select[aria-label=Status]", "");
      await page.waitForSelector(`${row}[data-status=resolved]`);
      await shot("alerts");
    });

    test("the alerts table shows a degradation alert's p-value and test, and — for a threshold alert", async () => {
      // What the page below lists (any status, any time), so the two compare like with like.
      const query = "hours=all";
      const { alerts } = await allAlerts(query);
      const tested = alerts.filter((a) => a.trigger?.condition_type === "degradation" && a.trigger.test?.p_value != null);
      const threshold = alerts.filter((a) => a.trigger?.condition_type === "threshold");
      assert.ok(tested.length > 0 && threshold.length > 0, `the demo has both kinds of alert: ${JSON.stringify(alerts.map((a) => a.trigger))}`);
      await go("#/");
      await ready();
      await go("#/alerts?status=");
      await ready("tbody tr[data-alert]");
      // As the notifications print it: four decimals, or two significant digits below 0.0001.
      const format = (p) => (p !== 0 && Math.abs(p) < 1e-4 ? p.toExponential(1) : p.toFixed(4));
      const expected = (alert) => alert.trigger?.condition_type === "degradation"
        ? [format(alert.trigger.test.p_value), `${alert.trigger.test.method}α ${alert.trigger.test.alpha}`]
        : ["—", "—"];
      const shown = (ids) => page.evaluate((ids) => ids.map((id) => {
        const tr = document.querySelector(`tr[data-alert="${id}"]`);
        return [tr?.querySelector(".p-value")?.textContent, tr?.querySelector(".test")?.textContent];
      }), ids);
      // The evaluator updates a degradation alert's test as samples arrive, and the page
      // follows over the event stream: compare the page with a fresh read until they agree.
      let want, got;
      for (let attempt = 0; attempt < 10; attempt++) {
        const now = (await allAlerts(query)).alerts.filter((a) => [...tested, ...threshold].some((t) => t.id === a.id));
        want = now.map(expected);
        got = await shown(now.map((a) => a.id));
        if (JSON.stringify(want) === JSON.stringify(got)) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.deepEqual(got, want);
      await shot("alerts-tests");
      assert.deepEqual(errors, []);
    });

    test("the model page and the alerts page print a p-value alike, the full value on hover", async () => {
      // The demo's p-values are whatever its detectors compute. To see both pages print one
      // known value, a second tab answers the pages with the API's responses rewritten in
      // the page: every degradation result and every recorded test get p = 0.0003. (In a
      // tab of its own, so no other scenario sees these answers.)
      const tab = await browser.newPage();
      const tabErrors = [];
      tab.on("pageerror", (e) => tabErrors.push(String(e)));
      try {
        await tab.goto(`${server.url}/#/rules`);
        await tab.waitForSelector("main[data-ready]");
        await tab.evaluate((p) => {
          const fromServer = window.fetch.bind(window);
          window.fetch = async (input, init) => {
            const response = await fromServer(input, init);
            const path = new URL(String(input), location.href).pathname;
            const degradation = path.endsWith("/degradation");
            if (!response.ok || !(degradation || path === "/api/v1/alerts")) return response;
            const data = await response.json();
            const items = Array.isArray(data) ? data : Object.values(data).find(Array.isArray) ?? [];
            for (const item of items) {
              if (degradation) item.p_value = p;
              else if (item.trigger?.test) item.trigger.test.p_value = p;
            }
            return new Response(JSON.stringify(data), { status: response.status, headers: response.headers });
          };
        }, 0.0003);
        // The cells of the column headed "p-value" that show a number, as [text, title].
        const cells = (table) => tab.$eval(table, (table) => {
          const column = [...table.tHead.rows[0].cells].findIndex((th) => th.textContent === "p-value");
          return [...table.tBodies[0].rows].map((tr) => tr.cells[column]).filter((td) => /\d/.test(td?.textContent ?? ""))
            .map((td) => [td.textContent, td.title]);
        });
        await tab.evaluate(() => { location.hash = "#/model/fraud_detector/v2.1"; });
        await tab.waitForSelector("main[data-ready] section[aria-labelledby=deg-h] tbody tr");
        const model = await cells("section[aria-labelledby=deg-h] table");
        await tab.evaluate(() => { location.hash = "#/alerts?status="; });
        await tab.waitForSelector("main[data-ready] tbody tr[data-alert]");
        const alerts = await cells("table.alerts");
        assert.ok(model.length > 0 && alerts.length > 0, `p-values on both pages: ${JSON.stringify({ model, alerts })}`);
        for (const cell of [...model, ...alerts]) assert.deepEqual(cell, ["0.0003", "p = 0.0003"]);
        await tab.screenshot({ path: join(artifacts, `${browserName}-alerts-p-value.png`), fullPage: true });
      } finally {
        await tab.close();
      }
      assert.deepEqual(tabErrors, []);
    });

    test("creating a rule from the page makes it appear in GET /api/v1/rules", async () => {
      await go("#/rules");
      await page.waitForSelector("form.rule-form");
      await shot("rules");
      const name = `e2e low accuracy (${browserName})`;
      await page.locator("input[name=name]").fill(name);
      await page.locator("input[name=model]").fill("fraud_detector");
      await page.locator("input[name=version]").fill("v2.1");
      await page.locator("input[name=metric]").fill("accuracy");
      await page.locator("input[name=threshold]").fill("0.9");
      await clickButton("form.rule-form", "Preview (backtest)");
      // The preview replays the unsaved rule on the server and draws where it would fire.
      await page.waitForSelector("form.rule-form .chart canvas");
      const note = await page.$eval("form.rule-form p[role=status]", (p) => p.textContent);
      assert.match(note, /would have fired [1-9]\d* times?/, note);
      await shot("rules-preview");
      assert.ok(!list(await json(`${server.url}/api/v1/rules`), "rules").some((r) => r.name === name), "the preview saved nothing");
      await clickButton("form.rule-form", "Create rule");
      await page.waitForFunction((text) => document.querySelector("main [role=status]")?.textContent.includes(text), {}, `Created ${name}`);
      const rules = list(await json(`${server.url}/api/v1/rules`), "rules");
      assert.ok(rules.some((r) => r.name === name), JSON.stringify(rules));
      await shot("rules-created");
    });

    test("a rule for each dataset is created from the form with its dataset", async () => {
      await go("#/rules");
      await page.waitForSelector("form.rule-form");
      const name = `e2e each dataset (${browserName})`;
      await page.locator("input[name=name]").fill(name);
      await page.locator("input[name=model]").fill("fraud_detector");
      await page.locator("input[name=metric]").fill("accuracy");
      await page.locator("input[name=dataset]").fill("*");
      await page.locator("input[name=threshold]").fill("0.5");
      await clickButton("form.rule-form", "Create rule");
      await page.waitForFunction((text) => document.querySelector("main [role=status]")?.textContent.includes(text), {}, `Created ${name}`);
      const rule = list(await json(`${server.url}/api/v1/rules`), "rules").find((r) => r.name === name);
      assert.ok(rule, "the rule was created");
      assert.equal(rule.dataset, "*");
      await page.waitForFunction((text) => [...document.querySelectorAll("tbody tr[data-rule]")].some((tr) => tr.textContent.includes(text) && tr.textContent.includes("on each dataset")), {}, name);
    });

    test("a change-point rule is created from the form with its own settings", async () => {
      await go("#/rules");
      await page.waitForSelector("form.rule-form");
      const name = `e2e accuracy shift (${browserName})`;
      await page.locator("input[name=name]").fill(name);
      await page.locator("input[name=model]").fill("fraud_detector");
      await page.locator("input[name=version]").fill("v2.1");
      await page.locator("input[name=metric]").fill("accuracy");
      await page.select("select[name=kind]", "change_point");
      // The change-point settings show, the threshold's hide, and a change-point rule
      // fires at the sample that completes the evidence: "for" is 1 and fixed.
      await page.waitForFunction(() => document.querySelector("input[name=min_shift]")?.offsetParent !== null
        && document.querySelector("input[name=threshold]")?.offsetParent === null
        && document.querySelector("input[name=for]")?.disabled);
      await page.locator("input[name=min_shift]").fill("2");
      await page.select("select[name=min_shift_unit]", "percent");
      await page.locator("input[name=false_alarm]").fill("2000");
      await clickButton("form.rule-form", "Preview (backtest)");
      await page.waitForFunction(() => /would have fired \d+ times?/.test(document.querySelector("form.rule-form p[role=status]")?.textContent ?? ""));
      await shot("rules-change-point-preview");
      await clickButton("form.rule-form", "Create rule");
      await page.waitForFunction((text) => document.querySelector("main [role=status]")?.textContent.includes(text), {}, `Created ${name}`);
      const rule = list(await json(`${server.url}/api/v1/rules`), "rules").find((r) => r.name === name);
      assert.ok(rule, "the rule was created");
      assert.equal(rule.condition_type, "change_point");
      assert.equal(rule.min_shift_percentage, 2);
      assert.equal(rule.false_alarm_interval_samples, 2000);
      assert.equal(rule.for_evaluations, 1);
      await page.waitForFunction((text) => [...document.querySelectorAll("tbody tr[data-rule]")].some((tr) => tr.textContent.includes(text)), {}, "level shift ≥ 2 %");
    });

    test("a no-data rule is created from the form, and a silent version is marked stale on the overview", async () => {
      // A version that reported every minute for 20 minutes and stopped 100 minutes ago.
      const model = `e2e_silent_${browserName.replace(/[^A-Za-z0-9_]/g, "_")}`;
      const now = Date.now();
      await json(`${server.url}/api/v1/metrics`, { method: "POST", body: JSON.stringify({ samples: Array.from({ length: 20 }, (_, i) =>
        ({ model, version: "v1", metric: "accuracy", value: 0.9, timestamp: now - (120 - i) * 60e3 })) }) });
      await go("#/rules");
      await page.waitForSelector("form.rule-form");
      const name = `e2e silent (${browserName})`;
      await page.locator("input[name=name]").fill(name);
      await page.locator("input[name=model]").fill(model);
      await page.locator("input[name=version]").fill("v1");
      await page.locator("input[name=metric]").fill("accuracy");
      await page.select("select[name=kind]", "no_data");
      // The no-data settings show, the threshold's hide; it fires when the silence reaches
      // its limit ("for" is 1 and fixed) and resolves itself when data returns.
      await page.waitForFunction(() => document.querySelector("input[name=no_data_minutes]")?.offsetParent !== null
        && document.querySelector("input[name=threshold]")?.offsetParent === null
        && document.querySelector("input[name=for]")?.disabled
        && document.querySelector("input[name=auto_resolve]")?.checked);
      await page.locator("input[name=no_data_minutes]").fill("30");
      await page.locator("input[name=no_data_intervals]").fill("5");
      await shot("rules-no-data");
      await clickButton("form.rule-form", "Create rule");
      await page.waitForFunction((text) => document.querySelector("main [role=status]")?.textContent.includes(text), {}, `Created ${name}`);
      const rule = list(await json(`${server.url}/api/v1/rules`), "rules").find((r) => r.name === name);
      assert.ok(rule, "the rule was created");
      assert.equal(rule.condition_type, "no_data");
      assert.equal(rule.no_data_minutes, 30);
      assert.equal(rule.no_data_intervals, 5);
      assert.equal(rule.for_evaluations, 1);
      assert.equal(rule.clear_after_evaluations, 1);
      assert.equal(rule.auto_resolve, true);
      await page.waitForFunction((text) => [...document.querySelectorAll("tbody tr[data-rule]")].some((tr) => tr.textContent.includes(text)), {}, "no data for 30 min and 5 usual intervals");
      // The versions listing says the version is stale, and the overview shows it.
      const versions = list(await json(`${server.url}/api/v1/models/${model}/versions`), "versions");
      assert.equal(versions[0].stale, true, JSON.stringify(versions));
      assert.equal(versions[0].usual_interval_seconds, 60);
      await go(`#/?q=${model}`);
      await page.waitForSelector("table.overview tbody tr:not([hidden]) .b-stale");
      const fresh = await page.$$eval("table.overview tbody tr", (trs) => trs.filter((tr) => !tr.hidden).length);
      assert.equal(fresh, 1);
      await shot("overview-stale");
    });

    test("a no-data rule on every metric (*) is created from the form; * with a degradation rule is refused naming metric", async () => {
      await go("#/rules");
      await page.waitForSelector("form.rule-form");
      // `*` is offered among the metrics.
      const offered = await page.$$eval("datalist#metrics-list option", (os) => os.map((o) => o.value));
      assert.ok(offered.includes("*"), JSON.stringify(offered));
      const name = `e2e version silent (${browserName})`;
      await page.locator("input[name=name]").fill(name);
      await page.locator("input[name=model]").fill("fraud_detector");
      await page.locator("input[name=metric]").fill("*");
      // A degradation rule cannot watch every metric: the server's error names the field.
      await page.select("select[name=kind]", "degradation");
      await page.waitForFunction(() => document.querySelector("input[name=max_pct]")?.offsetParent !== null);
      await clickButton("form.rule-form", "Create rule");
      await page.waitForFunction(() => /Not saved: 400: .*\(field metric\)/.test(document.querySelector("form.rule-form [role=alert]")?.textContent ?? ""));
      const refused = await page.$eval("form.rule-form [role=alert]", (div) => div.textContent);
      assert.match(refused, /only to no-data rules/, refused);
      await shot("rules-every-metric-refused");
      assert.ok(!list(await json(`${server.url}/api/v1/rules`), "rules").some((r) => r.name === name), "nothing was saved");
      // As a no-data rule it is created, for every version, and listed with `*`.
      await page.select("select[name=kind]", "no_data");
      await page.waitForFunction(() => document.querySelector("input[name=no_data_minutes]")?.offsetParent !== null);
      await page.locator("input[name=no_data_minutes]").fill("30");
      await clickButton("form.rule-form", "Create rule");
      await page.waitForFunction((text) => document.querySelector("main [role=status]")?.textContent.includes(text), {}, `Created ${name}`);
      const rule = list(await json(`${server.url}/api/v1/rules`), "rules").find((r) => r.name === name);
      assert.ok(rule, "the rule was created");
      assert.equal(rule.metric, "*");
      assert.equal(rule.version, null);
      assert.equal(rule.condition_type, "no_data");
      assert.equal(rule.no_data_minutes, 30);
      const row = await page.waitForFunction((id) => document.querySelector(`tbody tr[data-rule="${id}"]`)?.textContent, {}, rule.id);
      const text = await row.jsonValue();
      assert.ok(text.includes("fraud_detector · all versions · *") && text.includes("no data for 30 min"), text);
      await shot("rules-every-metric");
      // The demo's older versions are silent: let this rule not page the scenarios after it.
      await json(`${server.url}/api/v1/rules/${rule.id}`, { method: "DELETE" });
    });

    test("a one-minute spike inside a bucket shows in the min–max band and the legend", async () => {
      // Three days back, between the demo's five-minute samples: three samples over one
      // minute, far above latency's usual ~42 ms. Over 7 days the chart has buckets of
      // ~15 min, whose mean dilutes the spike; the bucket's max must keep it.
      const versions = list(await json(`${server.url}/api/v1/models/fraud_detector/versions`), "versions");
      const last = Date.parse(versions.find((v) => v.version === "v2.1").last_timestamp);
      const start = Math.floor((last - 3 * 86400e3) / 300e3) * 300e3 + 100e3;
      const spike = [400, 420, 410];
      await json(`${server.url}/api/v1/metrics`, { method: "POST", body: JSON.stringify({ samples: spike.map((value, i) =>
        ({ model: "fraud_detector", version: "v2.1", metric: "latency", value, timestamp: start + i * 30e3 })) }) });
      await go("#/model/fraud_detector/v2.1?range=7d");
      await ready("figure[data-metric=latency] canvas");
      const found = await page.$eval("figure[data-metric=latency] .chart", (box) => {
        box.scrollIntoView({ block: "center" });
        const u = box.uplot;
        const column = (label) => u.data[u.series.findIndex((s) => s.label === label)] ?? [];
        const max = column("v2.1 max");
        const top = Math.max(...max.filter((v) => v != null));
        const idx = max.indexOf(top);
        const over = u.over.getBoundingClientRect();
        return { top, meanTop: Math.max(...column("v2.1").filter((v) => v != null)), buckets: u.data[0].length,
          x: over.left + u.valToPos(u.data[0][idx], "x"), y: over.top + over.height / 2 };
      });
      assert.equal(found.top, Math.max(...spike), `the band's max holds the spike (${found.buckets} buckets)`);
      assert.ok(found.meanTop < Math.max(...spike), `the bucket means alone hide it (${found.meanTop})`);
      // Hovering that bucket, the legend gives its min and max beside its mean. A bucket
      // can be narrower than a pixel, which a mouse cannot pick: the mouse goes there,
      // then the cursor is set on the bucket's exact position.
      await page.mouse.move(found.x, found.y);
      await page.$eval("figure[data-metric=latency] .chart", (box, { x, y }) => {
        const over = box.uplot.over.getBoundingClientRect();
        box.uplot.setCursor({ left: x - over.left, top: y - over.top });
      }, found);
      const legend = "figure[data-metric=latency] .u-legend .u-series:nth-child(2) .u-value";
      await page.waitForFunction((legend) => /max 420\b/.test(document.querySelector(legend)?.textContent ?? ""), { timeout: 5_000 }, legend)
        .catch(async (e) => assert.fail(`${e.message}; the legend says ${await page.$eval(legend, (el) => el.textContent)}`));
      await shot("model-range");
      await theme("dark");
      await ready("figure[data-metric=latency] canvas");
      await shot("model-range-dark");
      await theme("light");
      assert.deepEqual(errors, []);
    });

    test("the time filter reaches back: a three-day-old alert shows under last 7d and any time, not last 24h", async () => {
      const day = 86400e3;
      const old = (await allAlerts("hours=all&status=resolved")).alerts.find((a) => Date.parse(a.resolved_at) < Date.now() - day);
      assert.ok(old, "the demo has an alert resolved more than a day ago");
      const row = `tr[data-alert="${old.id}"]`;
      await page.goto("about:blank");
      await page.goto(`${server.url}/#/alerts?status=resolved&since=24h`);
      await ready();
      // Each filter's rows and counts are those of the API for the same filter.
      for (const [since, hours, shown] of [["24h", "24", false], ["7d", "168", true], ["30d", "720", true], ["", "all", true]]) {
        await page.select("select[aria-label=Time]", since);
        // Drawn for this filter (the summary says which query it answers).
        await page.waitForFunction((hours) => new URLSearchParams(document.querySelector("main .summary")?.dataset.query ?? "").get("hours") === hours, {}, hours);
        assert.equal(await page.$(row) !== null, shown, `last ${since || "any time"}: the alert of three days ago is ${shown ? "" : "not "}listed`);
        // An alert resolved meanwhile reloads the page over the event stream: compare
        // with a fresh read until they agree.
        let want, got;
        for (let attempt = 0; attempt < 10; attempt++) {
          const api = await allAlerts(`status=resolved&hours=${hours}`);
          want = { total: api.total, bySeverity: api.bySeverity, rows: api.alerts.length };
          got = { ...(await alertCounts()), rows: await page.$$eval("tbody tr[data-alert]", (trs) => trs.length) };
          if (isDeepStrictEqual(got, want)) break;
          await new Promise((r) => setTimeout(r, 300));
        }
        assert.deepEqual(got, want, `last ${since || "any time"}`);
      }
      await shot("alerts-any-time");
      assert.deepEqual(errors, []);
    });

    test("more than a hundred matching alerts are all listed and counted", async () => {
      // A rule on a model of 130 versions, each breaching it: 130 alerts (some may be
      // held back by the rate limits: suppressed, still listed).
      const versions = Array.from({ length: 130 }, (_, i) => `v${i + 1}`);
      await json(`${server.url}/api/v1/rules`, { method: "POST", body: JSON.stringify({ name: "e2e many", model_name: "e2e_many",
        metric_type: "accuracy", threshold_value: 0.5, comparison_operator: "lt", severity: "low", for_evaluations: 1 }) });
      await json(`${server.url}/api/v1/metrics`, { method: "POST", body: JSON.stringify({ samples: versions.map((version) =>
        ({ model: "e2e_many", version, metric: "accuracy", value: 0.1 })) }) });
      let listed;
      for (let waited = 0; waited < 30_000; waited += 250) {
        listed = await allAlerts("model=e2e_many&hours=all");
        if (listed.total >= versions.length) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(listed.total, versions.length, "the evaluator fired an alert per version");
      // A fresh document: from another alerts page, a new hash would only change its query.
      await page.goto("about:blank");
      await page.goto(`${server.url}/#/alerts?status=&model=e2e_many`);
      await page.waitForFunction(() => document.querySelector("main .summary")?.dataset.query?.includes("model=e2e_many"));
      await page.waitForFunction((n) => document.querySelectorAll("tbody tr[data-alert]").length === n, { timeout: 15_000 }, versions.length)
        .catch(async (e) => assert.fail(`${e.message}: ${await page.$$eval("tbody tr[data-alert]", (trs) => trs.length)} rows`));
      const rows = await page.$$eval("tbody tr[data-alert]", (trs) => trs.map((tr) => tr.dataset.alert));
      assert.deepEqual([...rows].sort(), listed.alerts.map((a) => a.id).sort());
      assert.deepEqual(await alertCounts(), { total: versions.length, bySeverity: { critical: 0, high: 0, medium: 0, low: versions.length } });
      await shot("alerts-many");
      assert.deepEqual(errors, []);
    });

    test("API errors are explained on the page", async () => {
      await go("#/model/no_such_model/v1");
      await page.waitForSelector("main .error");
      assert.match(await page.$eval("main .error", (el) => el.textContent), /404|no model/i);
      await shot("error");
      assert.deepEqual(errors, []);
    });
  });
}
