//! Test support: a CloudWatch-compatible endpoint per test — moto's server (`moto[server]`
//! from PyPI, which scripts/setup installs into `target/cloudwatch-venv`) on a free
//! loopback port, speaking CloudWatch's Query protocol as CloudWatch does.
//!
//! One server per test, as for Prometheus: moto scans every datum of a region on each
//! read, so tests sharing one would slow each other down. `MODELWATCH_TEST_MOTO` names
//! another `moto_server` executable. When it is missing or does not answer, the test
//! fails — it is never skipped. The server stops when the guard drops or the test process
//! ends (a shell beside it watches both).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use super::credentials::Credentials;
use crate::served::{free_port, start_watched, wait_until_answers};

/// A running moto server of one test.
#[derive(Debug)]
pub struct TestCloudWatch {
    address: String,
    dir: PathBuf,
}

/// moto's server in the venv scripts/setup makes (or `MODELWATCH_TEST_MOTO`).
pub fn moto_server() -> PathBuf {
    std::env::var_os("MODELWATCH_TEST_MOTO")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/cloudwatch-venv/bin/moto_server")
        })
}

impl TestCloudWatch {
    /// Starts a fresh server and waits until it answers.
    pub fn start() -> TestCloudWatch {
        let moto = moto_server();
        if !moto.exists() {
            panic!(
                "cannot run {} (missing); run scripts/setup to install moto[server] into \
                 target/cloudwatch-venv, or name moto_server with MODELWATCH_TEST_MOTO",
                moto.display()
            );
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("modelwatch-moto-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for moto");
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let log = dir.join("moto.log");
        let command = format!("'{}' -H 127.0.0.1 -p {port}", moto.display());
        start_watched("moto", &command, &dir, &log);
        wait_until_answers("moto", &address, "/moto-api/", &[200], &log);
        TestCloudWatch { address, dir }
    }

    /// `http://HOST:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `cloudwatch://us-east-1/NAMESPACE?endpoint=…&resolution=1s` (moto keeps every
    /// second at every age).
    pub fn location(&self, namespace: &str) -> String {
        format!(
            "cloudwatch://us-east-1/{namespace}?endpoint={}&resolution=1s",
            self.endpoint()
        )
    }

    /// Credentials moto accepts (it checks none).
    pub fn credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDMODELWATCHTEST".into(),
            secret_access_key: "modelwatch-test-secret".into(),
            session_token: None,
            source: "the test".into(),
        }
    }
}

impl Drop for TestCloudWatch {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("stop"), b"");
    }
}
