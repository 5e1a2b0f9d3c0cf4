//! Embeds the dashboard's built files (`index.html`, `assets/…`, their `.br`/`.gz`
//! copies) and writes a table of them for `include_bytes!`, so the dashboard ships
//! inside the one binary.
//!
//! Where the files come from:
//! - `crates/dashboard/assets/`, the build of `web/` committed to the repository
//!   (`scripts/build-dashboard` writes it). A plain `cargo build --release` or
//!   `cargo install --path crates/modelwatch` embeds these: every normal build ships the
//!   real dashboard, with no Node.js on the machine.
//! - When `web/node_modules` is installed (`scripts/setup`), the front end is built
//!   afresh from `web/` into `OUT_DIR` instead, so whoever works on it sees their change
//!   in the next `cargo build`. `scripts/build-dashboard --check` (run by `scripts/test`)
//!   and this crate's tests fail while the committed files differ from that build.
//!   `MODELWATCH_DASHBOARD=committed` embeds the committed files even then.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let web = manifest.join("../../web");
    let committed = manifest.join("assets");
    // Only paths that exist: cargo reruns a build script whenever a path it watches is
    // missing, and a fresh clone has no node_modules.
    for input in [
        "src",
        "index.html",
        "public",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
        "node_modules/.package-lock.json",
    ] {
        let path = web.join(input);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rerun-if-changed={}", committed.display());
    println!("cargo:rerun-if-env-changed=MODELWATCH_NPM");
    println!("cargo:rerun-if-env-changed=MODELWATCH_DASHBOARD");

    let use_committed = std::env::var("MODELWATCH_DASHBOARD").as_deref() == Ok("committed");
    let (root, source) = if web.join("node_modules").is_dir() && !use_committed {
        let dist = out.join("web");
        build_front_end(&web, &dist);
        (dist, "web")
    } else {
        assert!(
            committed.join("index.html").is_file(),
            "{} holds no built dashboard: run scripts/build-dashboard",
            committed.display()
        );
        (committed, "committed")
    };
    let files = collect(&root);

    let mut table =
        String::from("/// Where the files came from: `web` (built now) or `committed`.\n");
    writeln!(table, "pub const SOURCE: &str = {source:?};").expect("write to a string");
    table.push_str("/// (path under the dashboard root, file contents)\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (name, path) in files {
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("write to a string");
    }
    table.push_str("];\n");
    std::fs::write(out.join("assets.rs"), table).expect("write assets.rs");
}

fn build_front_end(web: &Path, dist: &Path) {
    let npm = std::env::var("MODELWATCH_NPM").unwrap_or_else(|_| "npm".to_owned());
    let status = Command::new(&npm)
        .current_dir(web)
        .args(["run", "--silent", "build", "--", "--outDir"])
        .arg(dist)
        .args(["--emptyOutDir", "--logLevel", "warn"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {npm} to build the dashboard: {e}"));
    assert!(
        status.success(),
        "the dashboard's front-end build (npm run build in web/) failed"
    );
}

/// Every file under `dir`, with its path relative to `dir` using `/`.
fn collect(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read the built dashboard") {
            let path = entry.expect("read a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dist");
                let name = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((name, path));
            }
        }
    }
    files.sort();
    files
}
