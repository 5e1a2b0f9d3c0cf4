// Who is looking: GET /api/v1/session says whether the server wants tokens and who is
// signed in. Signing in sends a token once to POST /api/v1/session, which keeps it in an
// HttpOnly, SameSite=Strict session cookie: page scripts never hold it, and every request
// (the event stream's too) carries it. A read token sees everything; a write token also
// acts, so the pages show their buttons only to write (html[data-scope="read"] hides
// every .needs-write element, and says why once).
import { api, ApiError } from "./api";
import { h, clear, markReady } from "./util";

export interface Session {
  auth: "off" | "tokens";
  signed_in: boolean;
  name?: string;
  scope?: "read" | "write";
}

let current: Session = { auth: "off", signed_in: false };

export function session(): Session {
  return current;
}

/** Whether this viewer may act (acknowledge, resolve, silence, edit rules). */
export function canWrite(): boolean {
  return current.auth === "off" || current.scope === "write";
}

/** Whether the pages need a token before they can show anything. */
export function needsSignIn(): boolean {
  return current.auth === "tokens" && !current.signed_in;
}

export async function loadSession(): Promise<Session> {
  try {
    current = await api<Session>("/session");
  } catch {
    // An older server without the route: no sign-in.
    current = { auth: "off", signed_in: false };
  }
  show();
  return current;
}

/** The header's part: who is signed in, with a way out; and the read-only marker. */
function show() {
  const box = document.getElementById("session");
  document.documentElement.dataset.scope = canWrite() ? "write" : "read";
  if (!box) return;
  if (current.auth !== "tokens" || !current.signed_in) { clear(box); return; }
  clear(box, h("span", { class: "muted small", title: current.scope === "read" ? "A read token: you can look, not act" : "A write token: you can look and act" },
    `${current.name} (${current.scope})`), " ",
  h("button", { type: "button", class: "ghost small", onclick: async () => {
    await api("/session", { method: "DELETE" }).catch(() => null);
    await loadSession();
    dispatchEvent(new Event("modelwatch:session"));
  } }, "Sign out"));
}

/** The sign-in page, shown instead of any page while a token is needed. */
export function signInPage(main: HTMLElement): void {
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "current-password", required: true,
    placeholder: "mw_…", size: 40, "aria-describedby": "token-help" });
  const message = h("div", { role: "alert" });
  const form = h("form", { class: "card signin" },
    h("label", { for: "token" }, "API token"), input,
    h("p", { id: "token-help", class: "muted small" },
      "Create one with ", h("code", null, "modelwatch tokens create NAME --scope read"), " (to look) or ", h("code", null, "--scope write"),
      " (to also acknowledge, resolve and edit). It is kept in a cookie this page's scripts cannot read, until the browser closes or you sign out."),
    message,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(message);
    try {
      current = await api<Session>("/session", { method: "POST", json: { token: input.value.trim() } });
      input.value = "";
      show();
      dispatchEvent(new Event("modelwatch:session"));
    } catch (error) {
      const text = error instanceof ApiError && error.status === 401 ? "That token is unknown or revoked." : (error as Error).message;
      clear(message, h("p", { class: "error" }, `Not signed in: ${text}`));
      input.focus();
    }
  });
  clear(main, h("h1", null, "Sign in"), h("p", null, "This modelwatch server asks for an API token."), form);
  input.focus();
  markReady(main);
}
