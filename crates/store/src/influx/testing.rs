//! Test support: a real `influxd` (Debian's `influxdb` package, which scripts/setup
//! installs), started once per test process on a free loopback port with a data
//! directory of its own, and a uniquely named database per test.
//!
//! `MODELWATCH_TEST_INFLUXDB=HOST:PORT` names a running server instead. When `influxd`
//! is missing or does not answer, the test fails — it is never skipped. The server stops,
//! and its directory goes, when the test process ends (a shell beside it watches).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::served::{free_port, start_watched, wait_until_answers};

/// A database name no other test of any process uses.
#[derive(Debug)]
pub struct TestDatabase {
    location: String,
}

impl TestDatabase {
    /// A fresh database on the test server (created by the store when it opens).
    pub fn create(prefix: &str) -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}_{}_{n}", std::process::id());
        TestDatabase {
            location: format!("influxdb://{}/{name}", server()),
        }
    }

    /// `influxdb://HOST:PORT/NAME`.
    pub fn location(&self) -> &str {
        &self.location
    }
}

/// The test server's `HOST:PORT`, started at the first call.
pub fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("MODELWATCH_TEST_INFLUXDB") {
        Ok(address) => address,
        Err(_) => start(),
    })
}

fn start() -> String {
    if let Err(error) = Command::new("influxd")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        panic!("cannot run influxd ({error}); run scripts/setup to install InfluxDB (Debian's influxdb)");
    }
    let dir = std::env::temp_dir().join(format!("modelwatch-influxd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory for influxd");
    let (http, rpc) = (free_port(), free_port());
    let config = dir.join("influxdb.conf");
    std::fs::write(&config, config_text(&dir, http, rpc)).expect("influxd's configuration");
    let log = dir.join("influxd.log");
    let command = format!("influxd -config '{}'", config.display());
    start_watched("influxd", &command, &dir, &log);
    let address = format!("127.0.0.1:{http}");
    wait_until_answers("influxd", &address, "/ping", &[204], &log);
    address
}

fn config_text(dir: &Path, http: u16, rpc: u16) -> String {
    let dir = dir.display();
    format!(
        r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"

[meta]
  dir = "{dir}/meta"

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false

[retention]
  enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http}"
  log-enabled = false
  max-row-limit = 0

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"#
    )
}
