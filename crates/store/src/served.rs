//! Test support shared by the external stores' test servers (InfluxDB, Prometheus, moto):
//! a server started beside a shell that stops it and removes its directory when the test
//! process ends, the guard asks (a `stop` file), or the server dies; and the wait until
//! it answers over HTTP.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Runs `command` (shell syntax, its output to `log`) beside a shell watching it. The
/// server stops, and `dir` goes, once this process ends or `dir/stop` exists.
pub(crate) fn start_watched(name: &str, command: &str, dir: &Path, log: &Path) {
    let script = format!(
        "{command} >'{log}' 2>&1 & server=$!; \
         while kill -0 {parent} 2>/dev/null && kill -0 $server 2>/dev/null \
               && [ ! -e '{dir}/stop' ]; do sleep 0.2; done; \
         kill $server 2>/dev/null; wait $server; rm -rf '{dir}'",
        log = log.display(),
        parent = std::process::id(),
        dir = dir.display(),
    );
    // Never waited for: the shell reaps the server and removes the directory itself.
    #[allow(clippy::zombie_processes)]
    let _watcher = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("sh to start {name}: {e}"));
}

/// Waits up to 60 s until `GET path` at `address` answers with one of `statuses`; panics
/// with the server's log when it does not.
pub(crate) fn wait_until_answers(
    name: &str,
    address: &str,
    path: &str,
    statuses: &[u16],
    log: &Path,
) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if answers(address, path, statuses) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{name} did not answer at {address} within 60 s; its log:\n{log}");
}

fn answers(address: &str, path: &str, statuses: &[u16]) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| answer.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    status.is_some_and(|status| statuses.contains(&status))
}
