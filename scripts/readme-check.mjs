// Runs every command block of README.md as written, on a fresh clone, so a line a reader
// copies either works or fails CI. scripts/test runs it (and so .ci/run).
//
// - Every ```sh / ```bash / ```shell block, line by line, in one bash session at the
//   clone's root (so `export` and variables carry over, as in a reader's terminal).
//   A line fails when it exits non-zero, except `modelwatch check`, whose documented
//   exit status is its verdict (0 ok, 2 degraded, 3 insufficient data); a panic, a
//   syntax error or a command that is not found always fails.
// - Lines that run until stopped (`scripts/demo`, `modelwatch … serve`, `modelwatch
//   notify` without --once) are started, must print "listening on http://ADDR" (or stay
//   up for a few seconds, for `notify`) and answer /readyz, and are then stopped with
//   SIGTERM, which must end them cleanly.
// - A block right after `<!-- readme-check: not run: REASON -->` is not run (benchmarks,
//   the test suite itself, lines that need a service CI does not have); its lines are
//   still checked: shell syntax, every command found.
// - In every line, `a|b` (a `|` without spaces, outside quotes and comments) fails: the
//   shell reads it as a pipe, so alternatives belong in prose, not in a command.
// The session has a HOME of its own (the default database lands there), no MODELWATCH_*
// variables, and the clone's target/ linked to target/readme-check/ of this repository,
// so dependencies compiled by one run are reused by the next.
// READMECHECK_KEEP=1 keeps the temporary directory (its path is printed).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync, symlinkSync, existsSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const NOT_RUN = /<!--\s*readme-check:\s*not run:\s*(.+?)\s*-->/;

/** The fenced shell blocks of `text`: {line (1-based, of the first command), lines, notRun}. */
export function blocks(text) {
  const lines = text.split("\n");
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(sh|bash|shell)\s*$/.exec(lines[i]);
    if (!open) continue;
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === "") before--;
    const notRun = before >= 0 ? NOT_RUN.exec(lines[before])?.[1] ?? null : null;
    const body = [];
    let j = i + 1;
    for (; j < lines.length && !/^```\s*$/.test(lines[j]); j++) body.push({ number: j + 1, text: lines[j] });
    if (j === lines.length) throw new Error(`README.md:${i + 1}: a code block that never ends`);
    found.push({ start: i + 1, notRun, lines: joinContinuations(body) });
    i = j;
  }
  return found;
}

/** Lines ending in `\` continue on the next one, as the shell reads them. */
function joinContinuations(body) {
  const out = [];
  let pending = null;
  for (const line of body) {
    const text = pending ? `${pending.text}\n${line.text}` : line.text;
    const number = pending ? pending.number : line.number;
    if (/\\$/.test(line.text)) pending = { number, text };
    else { pending = null; if (text.trim() !== "") out.push({ number, text }); }
  }
  if (pending) out.push(pending);
  return out;
}

/** The line without its comment, and whether it has `a|b` outside quotes. */
export function scan(line) {
  let quote = null;
  let code = "";
  let bareAlternative = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === "\\" && quote === '"') { code += c + (line[i + 1] ?? ""); i++; continue; }
      if (c === quote) quote = null;
      code += c;
      continue;
    }
    if (c === "\\") { code += c + (line[i + 1] ?? ""); i++; continue; }
    if (c === "'" || c === '"') { quote = c; code += c; continue; }
    if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) break;
    if (c === "|" && line[i + 1] !== "|" && line[i - 1] !== "|" && i > 0 &&
        /[\w.-]/.test(line[i - 1]) && /[\w.-]/.test(line[i + 1] ?? "")) bareAlternative = true;
    code += c;
  }
  return { code: code.trim(), bareAlternative };
}

/** What kind of line this is: runs until stopped, reports a verdict, or an ordinary one. */
export function kind(code) {
  if (/(^|[\s;&|])scripts\/demo(\s|$)/.test(code)) return "server";
  if (/(^|[\s;&|])modelwatch(\s+--?\S+(\s+[^-\s]\S*)?)*\s+serve(\s|$)/.test(code)) return "server";
  if (/(^|[\s;&|])modelwatch(\s+--?\S+(\s+[^-\s]\S*)?)*\s+notify(\s|$)/.test(code) && !/--once/.test(code)) return "worker";
  if (/(^|[\s;&|])modelwatch(\s+--?\S+(\s+[^-\s]\S*)?)*\s+check(\s|$)/.test(code)) return "verdict";
  return "plain";
}

const PRELUDE = String.raw`
set -u -o pipefail
__fail() { printf '\nREADME.md:%s: %s\n    %s\n' "$1" "$2" "$3" >&2; exit 1; }
__decode() { printf '%s' "$1" | base64 -d; }
__syntax() { bash -n -c "$2" 2>/dev/null || __fail "$1" "is not valid shell" "$2"; }
__found() {  # every command word of the line resolves (builtin, function, file, PATH)
  local n="$1" line="$2" word
  for word in $(printf '%s\n' "$line" | awk '{
      gsub(/"[^"]*"|'"'"'[^'"'"']*'"'"'/, "");
      n = split($0, parts, /\||;|&&|\$\(|\|\|/);
      for (i = 1; i <= n; i++) { split(parts[i], w, " "); j = 1; while (w[j] ~ /^[A-Za-z_][A-Za-z_0-9]*=/) j++; if (w[j] != "") print w[j] }
    }'); do
    case "$word" in \(|\)|\{|\}|\!) continue;; esac
    type "$word" >/dev/null 2>&1 || [ -e "$word" ] || __fail "$n" "runs $word, which is not found" "$line"
  done
}
__run() {  # number, kind, line (base64)
  local n="$1" kind="$2" line status
  line="$(__decode "$3")"
  printf '\n$ %s\n' "$line"
  __syntax "$n" "$line"
  eval "$line" </dev/null 2> >(tee "$__tmp/stderr" >&2)
  status=$?
  sleep 0.1
  if grep -q "panicked" "$__tmp/stderr"; then __fail "$n" "panicked" "$line"; fi
  case "$kind:$status" in
    *:0|verdict:2|verdict:3) ;;
    *) __fail "$n" "exited with status $status" "$line";;
  esac
}
__ready() {  # GET /readyz over bash's /dev/tcp (no curl needed)
  local status host port
  host="$(printf '%s' "$1" | sed 's/:[0-9]*$//')"
  port="$(printf '%s' "$1" | sed 's/.*://')"
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" >&3
  read -r _ status _ <&3
  exec 3<&-
  [ "$status" = 200 ]
}
__server() {  # number, kind, line (base64): start, see it serve, stop it with SIGTERM
  local n="$1" kind="$2" line pid address deadline
  line="$(__decode "$3")"
  printf '\n$ %s   (started, checked, stopped)\n' "$line"
  __syntax "$n" "$line"
  : > "$__tmp/server.log"
  setsid bash -c "$line" </dev/null >"$__tmp/server.log" 2>&1 &
  pid=$!
  # scripts/demo builds first: allow for a release build.
  deadline=$((SECONDS + 1800))
  address=""
  if [ "$kind" = worker ]; then
    sleep 3
    kill -0 "$pid" 2>/dev/null || { cat "$__tmp/server.log" >&2; __fail "$n" "stopped instead of running" "$line"; }
  fi
  while [ "$kind" = server ] && [ -z "$address" ]; do
    address="$(sed -n 's|.*listening on http://\([^ /]*\).*|\1|p' "$__tmp/server.log" | head -n 1)"
    [ -n "$address" ] && break
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$__tmp/server.log" >&2
      __fail "$n" "stopped instead of running" "$line"
    fi
    [ $SECONDS -lt $deadline ] || { kill -TERM -- -"$pid"; __fail "$n" "did not start in time" "$line"; }
    sleep 0.5
  done
  if [ -n "$address" ]; then
    __ready "$address" || { kill -TERM -- -"$pid"; cat "$__tmp/server.log" >&2; __fail "$n" "does not answer GET /readyz with 200" "$line"; }
  fi
  kill -TERM -- -"$pid"
  wait "$pid"
  status=$?
  cat "$__tmp/server.log"
  if grep -q "panicked" "$__tmp/server.log"; then __fail "$n" "panicked" "$line"; fi
  [ "$status" -eq 0 ] || __fail "$n" "did not stop cleanly on SIGTERM (status $status)" "$line"
}
__check() {  # number, line (base64): a line that is not run is still checked
  local n="$1" line
  line="$(__decode "$2")"
  __syntax "$n" "$line"
  __found "$n" "$line"
}
`;

function main() {
  const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: repo, encoding: "utf8" }).stdout.trim();
  if (dirty) console.error("readme-check: uncommitted changes are not in the clone; it runs the README of HEAD");
  const tmp = mkdtempSync(join(tmpdir(), "modelwatch-readme-"));
  const clone = join(tmp, "modelwatch");
  const home = join(tmp, "home");
  mkdirSync(home);
  const cloned = spawnSync("git", ["clone", "--quiet", repo, clone], { stdio: "inherit" });
  if (cloned.status !== 0) process.exit(1);

  const readme = readFileSync(join(clone, "README.md"), "utf8");
  const found = blocks(readme);
  const problems = [];
  const run = [];
  const later = [];
  for (const block of found) {
    for (const { number, text } of block.lines) {
      const { code, bareAlternative } = scan(text);
      if (bareAlternative) problems.push(`README.md:${number}: \`a|b\` is a pipe to the shell; put alternatives in prose\n    ${text}`);
      if (code === "") continue;
      const encoded = Buffer.from(text).toString("base64");
      if (block.notRun) later.push(`__check ${number} ${Buffer.from(code.replace(/\\\n/g, " ")).toString("base64")}`);
      else {
        const k = kind(code);
        run.push(k === "server" || k === "worker" ? `__server ${number} ${k} ${encoded}` : `__run ${number} ${k} ${encoded}`);
      }
    }
  }
  if (problems.length) {
    console.error(problems.join("\n"));
    rmSync(tmp, { recursive: true, force: true });
    process.exit(1);
  }
  // The build cache lives on in this repository's target/, not in the clone.
  const cache = process.env.READMECHECK_TARGET ?? join(repo, "target", "readme-check");
  mkdirSync(cache, { recursive: true });
  symlinkSync(cache, join(clone, "target"));
  writeFileSync(join(tmp, "session.sh"), `${PRELUDE}\n__tmp=${JSON.stringify(tmp)}\n${run.join("\n")}\n${later.join("\n")}\necho; echo "readme-check: every command of README.md ran as written (${run.length} run, ${later.length} checked only)"\n`);

  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith("MODELWATCH_") || key.startsWith("XDG_") || key === "CARGO_TARGET_DIR" || key === "OLDPWD") continue;
    env[key] = value;
  }
  env.CARGO_HOME = process.env.CARGO_HOME ?? join(homedir(), ".cargo");
  env.RUSTUP_HOME = process.env.RUSTUP_HOME ?? join(homedir(), ".rustup");
  env.CARGO_INSTALL_ROOT = join(tmp, "cargo-install");
  env.HOME = home;
  const session = spawnSync("bash", [join(tmp, "session.sh")], { cwd: clone, env, stdio: "inherit" });
  if (process.env.READMECHECK_KEEP) console.error(`readme-check: kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
  process.exit(session.status ?? 1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
