// The app shell: hash routes (so the server serves one page), the theme switch and the
// live indicator. Each page is a function that renders into <main> and returns a
// clean-up function, called when the viewer navigates away.
import "./style.css";
import { startLive, restartLive } from "./live";
import { overview } from "./pages/overview";
import { modelPage } from "./pages/model";
import { alertsPage } from "./pages/alerts";
import { alertPage } from "./pages/alert";
import { rulesPage } from "./pages/rules";
import { channelsPage } from "./pages/channels";
import { loadSession, needsSignIn, signInPage } from "./session";
import { h, clear, markReady } from "./util";

type Page = (main: HTMLElement, parts: string[]) => (() => void) | void;

const routes: [RegExp, Page, string][] = [
  [/^\/?$/, overview, "overview"],
  [/^\/model\/([^/]+)\/([^/]+)$/, modelPage, "overview"],
  [/^\/alerts$/, alertsPage, "alerts"],
  [/^\/alerts\/([^/]+)$/, alertPage, "alerts"],
  [/^\/rules$/, rulesPage, "rules"],
  [/^\/channels$/, channelsPage, "channels"],
];

let leave: (() => void) | void;
let shownPath: string | null = null;

function route() {
  const main = document.getElementById("main")!;
  const raw = location.hash.replace(/^#/, "");
  const path = raw.split("?")[0] || "/";
  // Only the query changed (a filter was set): the page handles that itself.
  if (path === shownPath) return;
  shownPath = path;
  if (needsSignIn()) {
    delete main.dataset.ready;
    if (leave) leave();
    leave = undefined;
    shownPath = null;
    signInPage(main);
    return;
  }
  // Marks for the speed bench: navigation → page ready (see bench/dashboard).
  performance.clearMarks();
  performance.mark("route");
  // Cleared until the new page says it has drawn (tests and the bench wait for it).
  delete main.dataset.ready;
  if (leave) leave();
  leave = undefined;
  for (const [pattern, page, nav] of routes) {
    const match = pattern.exec(path);
    if (!match) continue;
    for (const link of document.querySelectorAll<HTMLElement>("[data-nav]")) {
      if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    clear(main);
    leave = page(main, match.slice(1).map(decodeURIComponent));
    return;
  }
  clear(main, h("h1", null, "Not found"), h("p", null, "No such page. ", h("a", { href: "#/" }, "Back to the overview")));
  markReady(main);
}

function setupTheme() {
  const button = document.getElementById("theme")!;
  const saved = localStorage.getItem("modelwatch.theme");
  if (saved) document.documentElement.dataset.theme = saved;
  button.addEventListener("click", () => {
    const dark = document.documentElement.dataset.theme
      ? document.documentElement.dataset.theme === "dark"
      : matchMedia("(prefers-color-scheme: dark)").matches;
    const next = dark ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("modelwatch.theme", next);
    // Charts take their colours when drawn: draw the page again.
    shownPath = null;
    route();
  });
}

// The skip link moves focus into the page. As a plain "#main" link it would change the
// hash, which is the route, and show "Not found".
function setupSkipLink() {
  document.querySelector<HTMLAnchorElement>("a.skip")?.addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main")!.focus();
  });
}

/** `/alerts/ID` (the link in every notification) is the alert's page: `/#/alerts/ID`. */
function followAlertLink() {
  const match = /^\/alerts\/([^/]+)$/.exec(location.pathname);
  if (match) history.replaceState(null, "", `/#/alerts/${match[1]}`);
}

followAlertLink();
setupTheme();
setupSkipLink();
// A change of who is signed in draws the page again (signed in: the page asked for;
// signed out or revoked: the sign-in page), and reconnects the event stream.
addEventListener("modelwatch:session", () => { shownPath = null; restartLive(); route(); });
addEventListener("modelwatch:unauthorized", () => {
  void loadSession().then(() => { if (needsSignIn()) { shownPath = null; route(); } });
});
addEventListener("hashchange", route);
// Back from the back/forward cache: the stream was closed meanwhile, so draw afresh.
addEventListener("pageshow", (event) => {
  if (event.persisted) { shownPath = null; route(); }
});
void loadSession().then(() => {
  startLive(document.getElementById("live")!);
  route();
});
