// Signing in to a server that wants tokens (`serve --auth tokens`): the dashboard asks
// for a token, keeps it in an HttpOnly session cookie (no page script can read it), shows
// a read token everything and no action, lets a write token act, keeps the event stream
// live, and signs out. Every scenario in each browser of E2E_BROWSERS.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, startBrowser, selectedBrowsers, artifacts } from "./harness.mjs";

for (const browserName of selectedBrowsers()) {
  describe(`${browserName}: sign-in`, () => {
    let server, browser, page, reader, writer;

    before(async () => {
      server = await startServer({ args: ["--auth", "tokens"] });
      reader = server.cli("tokens", "create", "viewer", "--scope", "read").trim();
      writer = server.cli("tokens", "create", "oncall", "--scope", "write").trim();
      // A running server picks up new tokens within 2 s.
      await new Promise((r) => setTimeout(r, 2500));
      browser = await startBrowser(browserName);
      page = await browser.newPage();
    });
    after(async () => {
      await browser?.stop();
      await server?.stop();
    });

    const ready = (selector = "") => page.waitForSelector(`main[data-ready] ${selector}`.trim());

    async function signIn(token) {
      await ready("#token");
      await page.type("#token", token);
      await page.click("form.signin button[type=submit]");
    }

    test("the dashboard asks for a token and refuses an unknown one", async () => {
      await page.goto(`${server.url}/#/alerts`);
      await ready("form.signin");
      await page.screenshot({ path: join(artifacts, `${browserName}-signin.png`) });
      await signIn("mw_not_a_real_token");
      await page.waitForFunction(() => /unknown or revoked/.test(document.querySelector("form.signin [role=alert]")?.textContent ?? ""));
      assert.equal(await page.$eval("#live", (el) => el.textContent), "signed out");
    });

    test("a read token sees the alerts and no action, the stream is live, the cookie is out of scripts' reach", async () => {
      await page.evaluate(() => { document.querySelector("#token").value = ""; });
      await signIn(reader);
      await ready("table.alerts tbody tr[data-alert]");
      assert.match(await page.$eval("#session", (el) => el.textContent), /viewer \(read\)/);
      const buttons = await page.$$eval("table.alerts button", (all) => all.filter((b) => b.offsetParent !== null).map((b) => b.textContent.trim()));
      assert.ok(buttons.length > 0 && buttons.every((b) => b === "History"), `only History: ${buttons}`);
      assert.ok(await page.$eval(".read-only-note", (el) => el.offsetParent !== null));
      await page.waitForFunction(() => document.querySelector("#live")?.dataset.state === "live");
      assert.equal(await page.evaluate(() => document.cookie), "", "HttpOnly: no script sees the session");
      const cookies = await browser.browser.cookies();
      const session = cookies.find((c) => c.name === "modelwatch_session");
      assert.ok(session, "the session cookie is set");
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, "Strict");
      assert.ok(session.session || session.expires === -1, "it lasts the browser's session");
      await page.screenshot({ path: join(artifacts, `${browserName}-read-only.png`) });
      // An open alert's page: a read token sees the alert, not the actions on it.
      const id = await page.$eval("table.alerts tr[data-status=active][data-alert]", (tr) => tr.dataset.alert);
      await page.evaluate((id) => { location.hash = `#/alerts/${id}`; }, id);
      await ready(".alert-chart canvas");
      assert.ok(await page.$eval("section[aria-labelledby=trigger-h]", (el) => el.offsetParent !== null));
      assert.equal(await page.$eval(".alert-actions", (el) => getComputedStyle(el).display), "none");
      assert.ok(await page.$eval(".read-only-note", (el) => el.offsetParent !== null));
      await page.evaluate(() => { location.hash = "#/alerts"; });
      await ready("table.alerts tbody tr[data-alert]");
    });

    test("signing out shows the sign-in page; a write token acts", async () => {
      await page.click("#session button");
      await ready("form.signin");
      await signIn(writer);
      await ready("table.alerts tbody tr[data-alert]");
      assert.match(await page.$eval("#session", (el) => el.textContent), /oncall \(write\)/);
      const id = await page.$eval("table.alerts tr[data-status=active][data-alert]", (tr) => tr.dataset.alert);
      await page.evaluate(() => { const who = document.querySelector("input#who"); if (who) { who.value = "e2e"; who.dispatchEvent(new Event("change")); } });
      await page.$eval(`tr[data-alert="${id}"] button.needs-write`, (b) => b.click());
      await page.waitForFunction((id) => document.querySelector(`tr[data-alert="${id}"]`)?.dataset.status === "acknowledged", {}, id);
      // Its page offers a write token what is left to do: resolve (with notes) and silence.
      await page.evaluate((id) => { location.hash = `#/alerts/${id}`; }, id);
      await ready(".alert-chart canvas");
      const actions = await page.$$eval(".alert-actions button", (all) => all.filter((b) => b.offsetParent !== null).map((b) => b.textContent.trim()));
      // A demo silence may already cover the alert's metric: the page then says until when.
      const silenced = await page.$(".alert-actions .silenced") !== null;
      assert.deepEqual(actions, silenced ? ["Resolve"] : ["Resolve", "Silence"]);
    });
  });
}
