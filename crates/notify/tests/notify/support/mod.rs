//! Real receivers for the notification tests: a recording HTTP server (answers a chosen
//! status, or hangs), an SMTP server (aiosmtpd, installed by `scripts/setup`) and a
//! Prometheus Alertmanager (Debian's package). A missing service fails the test with a
//! pointer to `scripts/setup`; nothing is skipped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

/// A recording HTTP/1.1 receiver on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, behaviour)
    }

    /// On a given port (to come back after being down).
    pub async fn start_on(port: u16, behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        Self::serve(listener, behaviour)
    }

    fn serve(listener: TcpListener, behaviour: Behaviour) -> Receiver {
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            requests: Arc::default(),
            behaviour: Arc::new(Mutex::new(behaviour)),
        };
        let shared = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move { shared.handle(stream).await });
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    async fn handle(&self, mut stream: TcpStream) {
        loop {
            let Some(request) = read_request(&mut stream).await else {
                return;
            };
            let behaviour = *self.behaviour.lock().unwrap();
            let status = match behaviour {
                Behaviour::Status(status) => status,
                Behaviour::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
            };
            self.requests.lock().unwrap().push(request);
            let body = if status < 300 { "ok" } else { "no" };
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An aiosmtpd server writing each message as JSON into `dir`.
pub struct SmtpSink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
    /// Kept open: the sink's later writes to a closed pipe would kill it.
    _stdout: tokio::process::ChildStdout,
}

/// How the SMTP sink speaks TLS, with its certificate and key (PEM files).
#[derive(Debug, Clone)]
pub enum SmtpTls {
    None,
    /// STARTTLS required before MAIL.
    Starttls {
        cert: PathBuf,
        key: PathBuf,
    },
    /// TLS from the first byte.
    Implicit {
        cert: PathBuf,
        key: PathBuf,
    },
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        Self::start_with(SmtpTls::None).await
    }

    pub async fn start_with(tls: SmtpTls) -> SmtpSink {
        let python = std::env::var_os("MODELWATCH_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/notify-venv/bin/python"));
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup (it installs aiosmtpd)",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/notify/support/smtp_sink.py");
        let mut command = Command::new(python);
        command.arg(script).arg(port.to_string()).arg(dir.path());
        match &tls {
            SmtpTls::None => {}
            SmtpTls::Starttls { cert, key } => {
                command.arg("starttls").arg(cert).arg(key);
            }
            SmtpTls::Implicit { cert, key } => {
                command.arg("tls").arg(cert).arg(key);
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP sink");
        let mut stdout = child.stdout.take().unwrap();
        let mut ready = [0u8; 6];
        tokio::time::timeout(Duration::from_secs(20), stdout.read_exact(&mut ready))
            .await
            .expect("SMTP sink ready in time")
            .expect("SMTP sink says ready");
        SmtpSink {
            port,
            dir,
            child,
            _stdout: stdout,
        }
    }

    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut messages = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                messages.push(serde_json::from_str(&text).unwrap());
            }
        }
        messages
    }
}

/// A Prometheus Alertmanager with a do-nothing route, on its own port and storage.
pub struct Alertmanager {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Alertmanager {
    pub async fn start() -> Alertmanager {
        let binary = ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("prometheus-alertmanager is missing: run scripts/setup");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start alertmanager");
        let manager = Alertmanager {
            port,
            _dir: dir,
            child,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{}/-/ready", manager.url()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return manager;
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The alerts its API lists (active, silenced and inhibited; not resolved).
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        reqwest::Client::new()
            .get(format!("{}/api/v2/alerts", self.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A certificate authority and a server certificate it signed for 127.0.0.1 and
/// localhost, generated for one test (rcgen), as PEM files in a temporary directory.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    pub fn generate() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "modelwatch test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let server_cert = server_params
            .signed_by(&server_key, &ca_cert, &ca_key)
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let ca = write("ca.pem", ca_cert.pem());
        let cert = write("server.pem", server_cert.pem());
        let key = write("server-key.pem", server_key.serialize_pem());
        TestPki { dir, ca, cert, key }
    }
}
