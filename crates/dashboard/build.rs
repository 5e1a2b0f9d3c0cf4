//! Builds the front end (`web/`, TypeScript + Vite) into `OUT_DIR` and writes a table of
//! its files for `include_bytes!`, so the dashboard ships inside the one binary.
//!
//! The build runs only when `web/node_modules` is there (`scripts/setup` runs `npm ci`).
//! Without it the table holds a single page saying how to build the dashboard: `cargo
//! clippy` and `cargo test` of the Rust crates must work on a machine without Node. When
//! the dependencies are installed, a failing front-end build fails the cargo build instead
//! of silently shipping that page.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let web = manifest.join("../../web");
    for input in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
        "node_modules/.package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=MODELWATCH_NPM");

    let dist = out.join("web");
    let files = if web.join("node_modules").is_dir() {
        build_front_end(&web, &dist);
        collect(&dist)
    } else {
        println!("cargo:warning=web/node_modules is missing: the dashboard is a placeholder page; run scripts/setup");
        let placeholder = out.join("placeholder.html");
        std::fs::write(&placeholder, PLACEHOLDER).expect("write the placeholder page");
        vec![("index.html".to_owned(), placeholder)]
    };

    let mut table = String::from("/// (path under the dashboard root, file contents)\npub static ASSETS: &[(&str, &[u8])] = &[\n");
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

const PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>modelwatch</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>modelwatch</h1>
<p>This binary was built without its dashboard: <code>web/node_modules</code> was missing.
Run <code>scripts/setup</code> and build again. The API is at <a href="/api/openapi.json">/api/openapi.json</a>.</p>
</body></html>
"#;
