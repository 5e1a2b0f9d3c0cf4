// Shared by the browser tests and the speed bench: starts the real `modelwatch serve`
// on a free port with a temporary database, and a browser from Debian (chromium or
// firefox-esr) through puppeteer-core — one driver and one API for both browsers, so
// every scenario runs unchanged in each (CDP for chromium, WebDriver BiDi for Firefox).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

export const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const artifacts = join(repo, "test-artifacts");
mkdirSync(artifacts, { recursive: true });

export function binary() {
  const target = process.env.CARGO_TARGET_DIR ?? join(repo, "target");
  const bin = process.env.MODELWATCH_BIN ?? join(target, "debug", "modelwatch");
  if (!existsSync(bin)) throw new Error(`no modelwatch binary at ${bin}: run cargo build -p modelwatch first (or set MODELWATCH_BIN)`);
  return bin;
}

/**
 * Starts `modelwatch serve` (with `--demo` unless told otherwise, and `args` added);
 * resolves with its base URL, its database and a way to run the CLI on that database.
 */
export async function startServer({ demo = true, args: extra = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "modelwatch-e2e-"));
  const db = join(dir, "e2e.db");
  const args = ["--db", db, "serve", "--listen", "127.0.0.1:0", ...extra];
  if (demo) args.push("--demo");
  const child = spawn(binary(), args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`modelwatch serve did not start in 60 s:\n${stderr}`)), 60_000);
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) { clearTimeout(timer); resolve(match[1]); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`modelwatch serve exited with ${code}:\n${stderr}`)); });
  });
  return {
    url,
    db,
    /** Runs `modelwatch --db DB ARGS…` and returns its standard output. */
    cli(...cliArgs) {
      const run = spawnSync(binary(), ["--db", db, ...cliArgs], { encoding: "utf8" });
      if (run.status !== 0) throw new Error(`modelwatch ${cliArgs.join(" ")}: ${run.stderr}`);
      return run.stdout;
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => { if (child.exitCode !== null) r(); else child.on("exit", r); setTimeout(r, 5000); });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The browsers the tests run in, each a Debian package (scripts/setup installs both). */
export const BROWSERS = {
  chromium: {
    executable: process.env.CHROMIUM ?? "/usr/bin/chromium",
    package: "chromium",
    launch: { browser: "chrome", args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"] },
  },
  firefox: {
    executable: process.env.FIREFOX ?? "/usr/bin/firefox-esr",
    package: "firefox-esr",
    launch: { browser: "firefox" },
  },
};

/** The browsers selected by E2E_BROWSERS (comma-separated), all of them by default. */
export function selectedBrowsers() {
  const names = (process.env.E2E_BROWSERS ?? Object.keys(BROWSERS).join(",")).split(",").map((s) => s.trim()).filter(Boolean);
  for (const name of names) if (!BROWSERS[name]) throw new Error(`E2E_BROWSERS: unknown browser ${name} (known: ${Object.keys(BROWSERS)})`);
  return names;
}

export const VIEWPORT = { width: 1280, height: 860 };

/**
 * A fresh profile each time; fails (never skips) when the browser is missing. `args` are
 * added to the browser's own.
 */
export async function startBrowser(name = "chromium", { args = [] } = {}) {
  const spec = BROWSERS[name];
  if (!spec) throw new Error(`unknown browser ${name}`);
  if (!existsSync(spec.executable)) throw new Error(`${spec.executable} is missing: run scripts/setup (apt-get install ${spec.package})`);
  const profile = mkdtempSync(join(tmpdir(), `modelwatch-${name}-`));
  const browser = await puppeteer.launch({
    ...spec.launch,
    args: [...(spec.launch.args ?? []), ...args],
    executablePath: spec.executable,
    headless: true,
    userDataDir: profile,
    defaultViewport: VIEWPORT,
    // A loaded two-core machine can take a while to start a browser.
    timeout: 60_000,
    protocolTimeout: 120_000,
  });
  return {
    name,
    browser,
    newPage: () => browser.newPage(),
    async stop() { await browser.close(); rmSync(profile, { recursive: true, force: true }); },
  };
}

export async function json(url, init = {}) {
  const response = await fetch(url, { ...init, headers: { "content-type": "application/json", ...(init.headers ?? {}) } });
  const text = await response.text();
  if (!response.ok) throw new Error(`${init.method ?? "GET"} ${url}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Whether the server documents a route (alerting routes may not exist yet). */
export async function hasRoute(base, path) {
  const doc = await json(`${base}/api/openapi.json`);
  return Object.keys(doc.paths ?? {}).some((p) => p === path);
}

export function list(data, key) {
  if (Array.isArray(data)) return data;
  return data?.[key] ?? data?.items ?? [];
}
