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

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::served::{free_port, start_watched, wait_until_answers};

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
        let command = format!(
            "prometheus --config.file='{config}' --storage.tsdb.path='{dir}/data' \
             --storage.tsdb.retention.time=100y --web.listen-address={address} \
             --web.enable-remote-write-receiver --web.enable-admin-api --log.level=warn",
            config = config.display(),
            dir = dir.display(),
        );
        start_watched("prometheus", &command, &dir, &log);
        wait_until_answers("prometheus", &address, "/-/ready", &[200], &log);
        TestPrometheus { address, dir }
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
