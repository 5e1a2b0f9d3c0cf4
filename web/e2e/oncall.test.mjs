// Being on call, end to end: a rule created in the form notifies the channels ticked in
// it; the notification's "Open in modelwatch" link opens the alert's page (trigger,
// figures, chart with its moments, history), where it is acknowledged, resolved and
// silenced; the channels page lists each channel's deliveries and failures and sends a
// test; the alerts table fits a laptop's screen and says each alert's value in its rule
// kind's unit. The server delivers to two webhook receivers run here: `ops` answers 200,
// `broken` refuses every message (HTTP 400, a permanent failure). Every scenario runs in
// each browser of E2E_BROWSERS, each browser against its own server and receivers.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, startBrowser, selectedBrowsers, json, list, artifacts, VIEWPORT } from "./harness.mjs";

/** A webhook receiver on a free port that answers `status` and keeps what it got. */
async function receiver(status) {
  const received = [];
  const server = createServer((request, response) => {
    let body = "";
    request.on("data", (d) => { body += d; });
    request.on("end", () => {
      try { received.push(JSON.parse(body)); } catch { received.push(body); }
      response.writeHead(status, { "content-type": "text/plain" });
      response.end(status === 200 ? "ok" : "refused by the e2e receiver");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/hook`, received, stop: () => new Promise((r) => server.close(r)) };
}

/** How the dashboard prints a number (util.ts's `num`): four significant digits. */
function num(value) {
  if (value == null || !Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) return value.toExponential(2);
  return Number(value.toPrecision(4)).toString();
}

async function until(what, check, timeout = 30_000) {
  const end = Date.now() + timeout;
  for (;;) {
    const found = await check();
    if (found) return found;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

for (const browserName of selectedBrowsers()) {
  describe(`${browserName}: on call`, () => {
    let server, browser, page, ops, broken, dir;
    const errors = [];

    before(async () => {
      ops = await receiver(200);
      broken = await receiver(400);
      dir = mkdtempSync(join(tmpdir(), "modelwatch-oncall-"));
      const config = join(dir, "modelwatch.toml");
      // The demo's own alerts must not use up the hourly limits before the test's fires.
      writeFileSync(config, `[alerts]
max_alerts_per_hour = 10000
max_alerts_per_model_per_hour = 10000
min_severity_to_notify = "low"

[notify]
max_attempts = 1
initial_backoff = "1s"

[channels.ops]
kind = "webhook"
url = "${ops.url}"

[channels.broken]
kind = "webhook"
url = "${broken.url}"
`);
      server = await startServer({ args: ["--config", config] });
      browser = await startBrowser(browserName);
      page = await browser.newPage();
      page.on("pageerror", (e) => errors.push(String(e)));
    });
    after(async () => {
      await browser?.stop();
      await server?.stop();
      await ops?.stop();
      await broken?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const ready = (selector = "") => page.waitForSelector(`main[data-ready] ${selector}`.trim());
    const shot = (name) => page.screenshot({ path: join(artifacts, `${browserName}-${name}.png`), fullPage: true });

    async function go(hash) {
      await page.evaluate((h) => new Promise((resolve) => {
        if (location.hash === h) return resolve();
        addEventListener("hashchange", () => resolve(), { once: true });
        location.hash = h;
      }), hash);
    }

    async function click(scope, label) {
      const handle = await page.waitForFunction((scope, label) =>
        [...document.querySelectorAll(`${scope} button`)].find((b) => b.textContent.trim() === label && b.offsetParent !== null), {}, scope, label);
      await handle.asElement().click();
    }

    const alert = async (id) => json(`${server.url}/api/v1/alerts/${encodeURIComponent(id)}`);

    test("the rule form offers the configured channels, and the rule notifies those ticked", async () => {
      await page.goto(`${server.url}/#/rules`);
      await ready("form.rule-form fieldset.notify-channels input[name=notify_channel]");
      const offered = await page.$$eval("fieldset.notify-channels input[name=notify_channel]", (inputs) => inputs.map((i) => i.value).sort());
      assert.deepEqual(offered, ["broken", "ops"]);
      const name = `e2e on call (${browserName})`;
      await page.locator("input[name=name]").fill(name);
      await page.locator("input[name=model]").fill("oncall_model");
      await page.locator("input[name=version]").fill("v1");
      await page.locator("input[name=metric]").fill("accuracy");
      await page.locator("input[name=threshold]").fill("0.5");
      await page.select("select[name=severity]", "high");
      await page.locator("input[name=for]").fill("1");
      for (const channel of offered) await page.click(`fieldset.notify-channels input[value=${channel}]`);
      await shot("rules-channels");
      await click("form.rule-form", "Create rule");
      await page.waitForFunction((text) => document.querySelector("main [role=status]")?.textContent.includes(text), {}, `Created ${name}`);
      const rule = list(await json(`${server.url}/api/v1/rules`), "rules").find((r) => r.name === name);
      assert.ok(rule, "the rule was created");
      assert.deepEqual([...rule.notify_channels].sort(), ["broken", "ops"]);
      await page.waitForFunction((name) => [...document.querySelectorAll("tbody tr[data-rule]")].some((tr) => tr.textContent.includes(name)
        && /notifies (broken, ops|ops, broken)/.test(tr.textContent)), {}, name);
      assert.deepEqual(errors, []);
    });

    test("a notification's link opens the alert's page, where it is acknowledged and resolved", async () => {
      await json(`${server.url}/api/v1/metrics`, { method: "POST", body: JSON.stringify({ samples: [0.93, 0.92, 0.2].map((value, i) =>
        ({ model: "oncall_model", version: "v1", metric: "accuracy", value, timestamp: Date.now() - (3 - i) * 60e3 })) }) });
      const message = await until("the ops receiver's notification", () => ops.received.find((m) => m?.alert_url));
      const link = new URL(message.alert_url);
      assert.match(link.pathname, /^\/alerts\/alert_[0-9a-f]{8}$/);
      const id = link.pathname.split("/").pop();
      // As a click in Slack or an e-mail does: the server's own address, the link's path.
      await page.goto(`${server.url}${link.pathname}`);
      await ready(".alert-chart canvas");
      assert.equal(await page.evaluate(() => location.hash), `#/alerts/${id}`);
      const shown = await alert(id);
      const title = await page.$eval("main h1", (h) => h.textContent);
      assert.ok(title.startsWith(shown.rule_name), title);
      assert.equal(await page.$eval("[data-figure=Value]", (dd) => dd.textContent), num(shown.value));
      assert.equal(await page.$eval("[data-figure=Threshold]", (dd) => dd.textContent), "lt 0.5");
      assert.match(await page.$eval("dd.condition", (dd) => dd.textContent), /accuracy lt 0\.5/);
      // The chart holds the samples around the alert, its rule's line and its first moment.
      await page.waitForSelector(".alert-chart .chart-markers button");
      const chart = await page.$eval(".alert-chart .chart", (box) => ({
        values: [...box.uplot.data[1]].filter((v) => v != null), lines: box.overlays.lines.map((l) => l.value),
        markers: [...box.parentElement.querySelectorAll(".chart-markers button")].map((b) => b.getAttribute("aria-label")),
      }));
      assert.deepEqual(chart.values, [0.93, 0.92, 0.2]);
      assert.deepEqual(chart.lines, [0.5]);
      assert.ok(chart.markers.some((m) => m.startsWith("first seen:")), JSON.stringify(chart.markers));
      assert.deepEqual(await page.$$eval(".alert-history li", (lis) => lis.map((li) => li.dataset.to)), ["active"]);
      await shot("alert-page");

      await page.locator("#who").fill("e2e@example.com");
      await click(".alert-actions", "Acknowledge");
      await page.waitForFunction(() => document.querySelector("main h1 .b-s-acknowledged"));
      assert.equal((await alert(id)).status, "acknowledged");
      await page.waitForFunction(() => [...document.querySelectorAll(".alert-history li")].map((li) => li.dataset.to).join() === "active,acknowledged");
      await page.locator("#resolve-notes").fill("retrained on fresh data");
      await click(".alert-actions", "Resolve");
      await page.waitForFunction(() => document.querySelector("main h1 .b-s-resolved"));
      const resolved = await alert(id);
      assert.equal(resolved.status, "resolved");
      assert.equal(resolved.resolution_notes, "retrained on fresh data");
      assert.equal(resolved.resolved_by, "e2e@example.com");
      // Done with: no more actions; the history and the chart show each step.
      await ready(".alert-chart canvas");
      assert.equal(await page.$(".alert-actions"), null);
      assert.match(await page.$eval("[data-figure=Notes]", (dd) => dd.textContent), /retrained on fresh data/);
      await page.waitForFunction(() => [...document.querySelectorAll(".alert-chart .chart-markers button")]
        .map((b) => b.className.replace("marker m-", "")).join() === "fired,acknowledged,resolved");
      await page.waitForFunction(() => [...document.querySelectorAll(".alert-history li")].map((li) => li.dataset.to).join() === "active,acknowledged,resolved");
      await shot("alert-page-resolved");
      assert.deepEqual(errors, []);
    });

    test("a degradation alert's page gives its figures, in percent, and silences its metric", async () => {
      const degraded = (await json(`${server.url}/api/v1/alerts?hours=all&limit=1000`)).alerts
        .find((a) => a.trigger?.condition_type === "degradation" && a.trigger.test?.p_value != null && a.status === "active");
      assert.ok(degraded, "the demo has an active degradation alert with a test");
      await go(`#/alerts/${degraded.id}`);
      await ready(".alert-chart canvas");
      const figures = await page.$$eval("dd[data-figure]", (dds) => Object.fromEntries(dds.map((dd) => [dd.dataset.figure, dd.textContent])));
      const now = await alert(degraded.id);
      assert.equal(figures["Worse than baseline by"], `${num(now.value)} %`);
      assert.equal(figures.Baseline, num(now.trigger.baseline_value));
      assert.equal(figures.Current, num(now.trigger.current_value));
      assert.match(figures["p-value"], /^(\d\.\d{4}|\d\.\de-\d+)$/);
      assert.match(figures.Change, /^[+-]?\d+\.\d %$/);
      // The baseline and the rule's line (the baseline moved by the allowed percentage).
      const lines = await page.$eval(".alert-chart .chart", (box) => box.overlays.lines.map((l) => l.label));
      assert.ok(lines.includes("baseline") && lines.some((l) => l.includes("% worse than baseline")), JSON.stringify(lines));
      await page.locator("#who").fill("e2e@example.com");
      await page.select("#silence-for", "240");
      await page.locator("#silence-comment").fill("known issue, fix deploying");
      await click(".alert-actions", "Silence");
      await page.waitForSelector(".alert-actions .silenced");
      const silences = list(await json(`${server.url}/api/v1/silences`), "silences");
      const silence = silences.find((s) => s.comment === "known issue, fix deploying");
      assert.ok(silence, JSON.stringify(silences));
      assert.deepEqual([silence.model, silence.version, silence.metric, silence.created_by],
        [degraded.model, degraded.version, degraded.metric, "e2e@example.com"]);
      const minutes = (Date.parse(silence.ends_at) - Date.parse(silence.starts_at)) / 60e3;
      assert.ok(Math.abs(minutes - 240) < 1, `${minutes} minutes`);
      await shot("alert-page-degradation");
      assert.deepEqual(errors, []);
    });

    test("an id no alert has shows a page saying so", async () => {
      for (const id of ["alert_00000000", "not-an-alert"]) {
        await page.goto(`${server.url}/alerts/${id}`);
        await ready(".no-such-alert");
        assert.equal(await page.$eval("main h1", (h) => h.textContent), "No such alert");
        assert.match(await page.$eval(".no-such-alert", (p) => p.textContent), new RegExp(id));
      }
      await shot("alert-unknown");
      assert.deepEqual(errors, []);
    });

    test("the channels page lists each channel's deliveries and failures, and sends a test", async () => {
      // Both channels got the rule's alert: delivered to ops, refused by broken.
      await until("both deliveries to finish", async () => {
        const rows = list(await json(`${server.url}/api/v1/notifications`), "notifications");
        return rows.some((n) => n.channel === "ops" && n.status === "delivered") && rows.some((n) => n.channel === "broken" && n.status === "failed");
      });
      await page.goto(`${server.url}/#/channels`);
      await ready("section[data-channel=ops]");
      assert.deepEqual(await page.$$eval("section[data-channel]", (ss) => ss.map((s) => s.dataset.channel).sort()), ["broken", "ops"]);
      assert.equal(await page.$eval("nav a[aria-current=page]", (a) => a.textContent), "Channels");
      await page.waitForSelector("section[data-channel=ops] table[data-deliveries=recent] tr[data-status=delivered]");
      await page.waitForSelector("section[data-channel=ops] p[data-deliveries=failures]");
      const failure = await page.waitForSelector("section[data-channel=broken] table[data-deliveries=failures] tr[data-status=failed]");
      assert.match(await failure.evaluate((tr) => tr.textContent), /HTTP 400/);
      assert.match(await page.$eval("section[data-channel=broken] .counts", (p) => p.textContent), /[1-9]\d* failed/);
      await shot("channels");

      const before = ops.received.length;
      await click("section[data-channel=ops]", "Send test");
      await page.waitForSelector("section[data-channel=ops] .test-outcome .ok");
      assert.match(await page.$eval("section[data-channel=ops] .test-outcome", (el) => el.textContent), /Test sent to http:\/\/127\.0\.0\.1/);
      assert.equal(ops.received.length, before + 1, "the receiver got the test");
      await click("section[data-channel=broken]", "Send test");
      await page.waitForSelector("section[data-channel=broken] .test-outcome .error");
      assert.match(await page.$eval("section[data-channel=broken] .test-outcome", (el) => el.textContent), /HTTP 400/);
      await shot("channels-tested");
      assert.deepEqual(errors, []);
    });

    test("the alerts table fits 1,280 and 1,400 px screens without sideways scrolling", async () => {
      try {
        for (const width of [1280, 1400]) {
          await page.setViewport({ width, height: 900 });
          // Every status: open alerts have the widest actions, resolved ones the longest notes.
          await page.goto("about:blank");
          await page.goto(`${server.url}/#/alerts?status=`);
          await ready("tbody tr[data-alert]");
          const sizes = await page.evaluate(() => {
            const box = document.querySelector("table.alerts").closest(".scroll");
            return { table: box.scrollWidth, box: box.clientWidth, page: document.documentElement.scrollWidth, screen: innerWidth };
          });
          assert.ok(sizes.table <= sizes.box, `${width} px: the table is ${sizes.table} px wide in a ${sizes.box} px box`);
          assert.ok(sizes.page <= sizes.screen, `${width} px: the page is ${sizes.page} px wide`);
          await shot(`alerts-${width}`);
        }
      } finally {
        await page.setViewport(VIEWPORT);
      }
      assert.deepEqual(errors, []);
    });

    test("every alert's value is in its rule kind's unit in the alerts table", async () => {
      await page.goto("about:blank");
      await page.goto(`${server.url}/#/alerts?status=`);
      await ready("tbody tr[data-alert]");
      const alerts = (await json(`${server.url}/api/v1/alerts?hours=all&limit=1000`)).alerts;
      const kinds = new Set(alerts.map((a) => a.trigger?.condition_type));
      assert.ok(kinds.has("degradation") && kinds.has("threshold"), [...kinds].join());
      const expected = (a) => {
        const worst = a.worst_value !== a.value;
        switch (a.trigger?.condition_type) {
          case "degradation": return `${num(a.value)} % worse than baseline${worst ? ` (worst ${num(a.worst_value)} %)` : ""}, ${a.occurrences}×`;
          case "change_point": return `shift ${a.value > 0 ? "+" : ""}${num(a.value)} sd`;
          default: return `value ${num(a.value)}${worst ? ` (worst ${num(a.worst_value)})` : ""}, ${a.occurrences}×`;
        }
      };
      // Open alerts change as samples arrive: compare with a fresh read until they agree.
      let want, got;
      for (let attempt = 0; attempt < 10; attempt++) {
        const now = (await json(`${server.url}/api/v1/alerts?hours=all&limit=1000`)).alerts;
        want = now.map((a) => [a.id, expected(a)]);
        got = await page.evaluate((ids) => ids.map((id) => [id, document.querySelector(`tr[data-alert="${id}"] .figures`)?.textContent]), now.map((a) => a.id));
        if (JSON.stringify(want.map(([id, text]) => [id, text.split(",")[0]])) === JSON.stringify(got.map(([id, text]) => [id, text?.split(",")[0]]))) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      for (const [[id, text], [, shown]] of want.map((w, i) => [w, got[i]])) assert.ok(shown?.startsWith(text.split(",")[0]), `${id}: ${shown} vs ${text}`);
      assert.ok(!got.some(([, text]) => /^value \d+\.\d+ %/.test(text ?? "")));
      assert.deepEqual(errors, []);
    });
  });
}
