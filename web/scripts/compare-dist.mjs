// Compares two builds of the dashboard: the one committed in crates/dashboard/assets and a
// fresh one of web/. The files a browser gets must be byte for byte the same; the .br and
// .gz copies beside them are compared by what they decompress to (compressors of two
// Node versions may pick other bytes for the same text). Exits 1 naming every difference.
// Usage: node web/scripts/compare-dist.mjs COMMITTED FRESH
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";

const [committed, fresh] = process.argv.slice(2);
if (!committed || !fresh) {
  console.error("usage: compare-dist.mjs COMMITTED FRESH");
  process.exit(2);
}

function files(root) {
  const out = new Map();
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out.set(relative(root, path).split("\\").join("/"), readFileSync(path));
    }
  };
  walk(root);
  return out;
}

function decoded(name, bytes) {
  if (name.endsWith(".br")) return brotliDecompressSync(bytes);
  if (name.endsWith(".gz")) return gunzipSync(bytes);
  return bytes;
}

const a = files(committed);
const b = files(fresh);
const problems = [];
for (const name of new Set([...a.keys(), ...b.keys()])) {
  if (!a.has(name)) { problems.push(`${name}: built from web/ but not committed`); continue; }
  if (!b.has(name)) { problems.push(`${name}: committed but no longer built from web/`); continue; }
  let left, right;
  try {
    left = decoded(name, a.get(name));
    right = decoded(name, b.get(name));
  } catch (error) {
    problems.push(`${name}: cannot be decompressed (${error.message})`);
    continue;
  }
  if (!left.equals(right)) problems.push(`${name}: differs`);
  // A compressed copy must hold exactly the file beside it.
  const base = name.replace(/\.(br|gz)$/, "");
  if (base !== name && a.has(base) && !left.equals(a.get(base))) problems.push(`${name}: does not decompress to ${base}`);
}
if (problems.length > 0) {
  console.error(`the committed dashboard (${committed}) does not match web/:`);
  for (const p of problems.sort()) console.error(`  ${p}`);
  console.error("run scripts/build-dashboard and commit crates/dashboard/assets");
  process.exit(1);
}
console.log(`the committed dashboard matches web/ (${a.size} files)`);
