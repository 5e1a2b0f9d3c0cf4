//! Test support: a real Prometheus (Debian's `prometheus` package, which scripts/setup
//! installs) per test, on a free loopback port with a fresh data directory, the
//! remote-write receiver and the admin API on, and an out-of-order window of 100 years in
//! its configuration.
//!
//! One server per test, not per process as for InfluxDB: Prometheus's out-of-order window
//! counts back from the newest sample *of the whole server*, so tests writing at 1970
//! and at 2199 cannot share one. When `prometheus` is missing or does not answer, the
//! test fails — it is never skipped. The server stops, and its directory goes, when the
//! guard drops or the test process ends (a shell beside it watches both).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running Prometheus of one test.
#[derive(Debug)]
pub struct TestPrometheus {
    address: String,
    dir: std::path::PathBuf,
}

impl TestPrometheus {
    /// Starts a fresh server and waits until it is ready.
    pub fn start() -> TestPrometheus {
        if let Err(error) = Command::new("prometheus")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            panic!(
                "cannot run prometheus ({error}); run scripts/setup to install Prometheus \
                 (Debian's prometheus)"
            );
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("modelwatch-prometheus-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            "storage:\n  tsdb:\n    out_of_order_time_window: 100y\n",
        )
        .expect("prometheus's configuration");
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let log = dir.join("prometheus.log");
        // The shell starts prometheus, then watches this process and the stop file: when
        // either says so, it stops prometheus and removes the directory.
        let script = format!(
            "prometheus --config.file='{config}' --storage.tsdb.path='{dir}/data' \
             --storage.tsdb.retention.time=100y --web.listen-address={address} \
             --web.enable-remote-write-receiver --web.enable-admin-api --log.level=warn \
             >'{log}' 2>&1 & server=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $server 2>/dev/null \
                   && [ ! -e '{dir}/stop' ]; do sleep 0.2; done; \
             kill $server 2>/dev/null; wait $server; rm -rf '{dir}'",
            config = config.display(),
            dir = dir.display(),
            log = log.display(),
            parent = std::process::id(),
        );
        // Never waited for: the shell reaps prometheus and removes the directory itself.
        #[allow(clippy::zombie_processes)]
        let _watcher = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh to start prometheus");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if ready(&address) {
                return TestPrometheus { address, dir };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("prometheus did not answer at {address} within 60 s; its log:\n{log}");
    }

    /// `HOST:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `prometheus://HOST:PORT`.
    pub fn location(&self) -> String {
        format!("prometheus://{}", self.address)
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("stop"), b"");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn ready(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /-/ready HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}
