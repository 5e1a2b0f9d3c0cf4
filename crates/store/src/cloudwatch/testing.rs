//! Test support: a CloudWatch-compatible endpoint per test — moto's server (`moto[server]`
//! from PyPI, which scripts/setup installs into `target/cloudwatch-venv`) on a free
//! loopback port, speaking CloudWatch's Query protocol as CloudWatch does.
//!
//! One server per test, as for Prometheus: moto scans every datum of a region on each
//! read, so tests sharing one would slow each other down. `MODELWATCH_TEST_MOTO` names
//! another `moto_server` executable. When it is missing or does not answer, the test
//! fails — it is never skipped. The server stops when the guard drops or the test process
//! ends (a shell beside it watches both).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::credentials::Credentials;

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
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let address = format!("127.0.0.1:{port}");
        let log = dir.join("moto.log");
        let script = format!(
            "'{moto}' -H 127.0.0.1 -p {port} >'{log}' 2>&1 & server=$!; \
             while kill -0 {parent} 2>/dev/null && kill -0 $server 2>/dev/null \
                   && [ ! -e '{dir}/stop' ]; do sleep 0.2; done; \
             kill $server 2>/dev/null; wait $server; rm -rf '{dir}'",
            moto = moto.display(),
            dir = dir.display(),
            log = log.display(),
            parent = std::process::id(),
        );
        // Never waited for: the shell reaps moto and removes the directory itself.
        #[allow(clippy::zombie_processes)]
        let _watcher = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh to start moto");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if answers(&address) {
                return TestCloudWatch { address, dir };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("moto did not answer at {address} within 60 s; its log:\n{log}");
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

fn answers(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}
