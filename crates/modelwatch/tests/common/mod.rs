//! What the integration tests of the `modelwatch` binary share: starting the binary,
//! reading the address `serve` prints, raw HTTP/1.1 over the standard library, waiting on
//! a webhook receiver's state, stopping a process with SIGTERM, fresh PostgreSQL
//! databases. Each test binary uses only part of it, hence the `dead_code` allowances.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use modelwatch::store::postgres::testing::TestDatabase;

/// The binary on database `db`, with no configuration file from the caller's environment
/// leaking in; tests that want one set `MODELWATCH_CONFIG` afterwards.
#[allow(dead_code)]
pub fn modelwatch(db: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_modelwatch"));
    command
        .env("MODELWATCH_DB", db)
        .env_remove("MODELWATCH_ALERTS_DB")
        .env_remove("MODELWATCH_CONFIG");
    command
}

/// The stdout of a run that must have succeeded; otherwise fails naming `args` and
/// showing stderr.
#[allow(dead_code)]
pub fn succeeded(args: &[&str], out: Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A timestamp (ms) `minutes` before the wall clock, as `--at` takes it: samples recorded
/// in the past so evaluation at the wall clock sees them as already happened.
#[allow(dead_code)]
pub fn minutes_ago(minutes: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - minutes * 60_000).to_string()
}

/// The address `serve` printed on its first stdout line. The caller decides whether the
/// pipe stays open (pass `&mut ChildStdout`) or closes here (pass the `ChildStdout`).
#[allow(dead_code)]
pub fn listening_on(stdout: impl Read) -> String {
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    line.trim()
        .strip_prefix("modelwatch listening on http://")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned()
}

/// Sends `request` (a whole raw HTTP/1.1 request with `Connection: close`) over a fresh
/// connection and returns the whole response.
#[allow(dead_code)]
pub fn exchange(address: &str, request: &str, read_timeout: Option<Duration>) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(read_timeout).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Status and body of a whole response; fails if it has no head/body separator.
#[allow(dead_code)]
pub fn status_and_body(response: &str) -> (u16, &str) {
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body)
}

/// One request as a test's webhook receiver reads it.
#[allow(dead_code)]
pub struct Request {
    /// The request target: path and query.
    pub target: String,
    /// Names lower-cased; a repeated header keeps its last value.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// The next request on a kept-alive connection; `None` once the sender closed it or sent
/// less than it announced.
#[allow(dead_code)]
pub fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    // Request line, then headers up to the blank line.
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let target = line.split(' ').nth(1).unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        target,
        headers,
        body,
    })
}

/// Kills and reaps a child, ignoring errors: for `Drop`, so that a failing test leaves
/// no process behind.
#[allow(dead_code)]
pub fn reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until `done` holds for a receiver's state, at most `limit`; false on time-out.
#[allow(dead_code)]
pub fn wait_for<T>(
    state: &(Mutex<T>, Condvar),
    limit: Duration,
    done: impl Fn(&T) -> bool,
) -> bool {
    let (lock, changed) = state;
    let deadline = Instant::now() + limit;
    let mut guard = lock.lock().unwrap();
    while !done(&guard) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        guard = changed.wait_timeout(guard, left).unwrap().0;
    }
    true
}

/// Sends SIGTERM and waits (at most 20 s) for a successful exit.
#[allow(dead_code)]
pub fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh PostgreSQL database for one test; the test fails when PostgreSQL is
/// unreachable. Keep the runtime alive as long as the database.
#[allow(dead_code)]
pub fn postgres_database(label: &str) -> (tokio::runtime::Runtime, TestDatabase) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let database = runtime.block_on(TestDatabase::create(label));
    (runtime, database)
}
