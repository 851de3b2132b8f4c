//! A fresh database per test. The server is the one `DATABASE_URL` points
//! at, else 127.0.0.1:5432 as user postgres; when nothing answers there and
//! `initdb`/`pg_ctl` are on PATH, a throwaway cluster under the temp dir.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// URL of the Postgres server tests use (its `postgres` database).
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(resolve_server)
}

fn resolve_server() -> String {
    let configured = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    let url = configured
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL is a Postgres URL");
    let admin = options.database("postgres");
    if answers(&admin) {
        return admin.to_url_lossy().to_string();
    }
    if configured.is_some() {
        panic!("DATABASE_URL is set but no Postgres answers there");
    }
    throwaway_cluster()
}

fn answers(options: &PgConnectOptions) -> bool {
    let host = options.get_host();
    if host.starts_with('/') {
        return true;
    }
    let Ok(mut addrs) = (host, options.get_port()).to_socket_addrs() else {
        return false;
    };
    addrs.any(|addr: SocketAddr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
}

/// Starts (or reuses) a cluster owned by this user under the temp dir.
fn throwaway_cluster() -> String {
    let on_path = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    if !on_path("initdb") || !on_path("pg_ctl") {
        panic!(
            "no Postgres answers at 127.0.0.1:5432 and initdb/pg_ctl are not on PATH: \
             start Postgres or set DATABASE_URL"
        );
    }
    let dir: PathBuf = std::env::temp_dir().join("onestop-test-postgres");
    let data = dir.join("data");
    let port = 54329;
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    let lock = std::fs::File::create(dir.join("lock")).expect("lock file");
    lock.lock().expect("lock the throwaway cluster");
    if !data.join("PG_VERSION").exists() {
        let status = Command::new("initdb")
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(&data)
            .status()
            .expect("initdb runs");
        assert!(
            status.success(),
            "initdb failed (as root, run the tests as a regular user)"
        );
    }
    let running = Command::new("pg_ctl")
        .arg("status")
        .arg("-D")
        .arg(&data)
        .status();
    if !running.is_ok_and(|s| s.success()) {
        let status = Command::new("pg_ctl")
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.display()
            ))
            .status()
            .expect("pg_ctl runs");
        assert!(
            status.success(),
            "pg_ctl start failed; see {}",
            dir.join("log").display()
        );
    }
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// A database created for one test and dropped when the value is dropped.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let server: PgConnectOptions = server_url().parse().expect("server url");
        let name = format!("onestop_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = server
            .connect()
            .await
            .expect("connect to the test Postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = server.database(&name).to_url_lossy().to_string();
        Self { url, name }
    }

    /// Stands for no database: dropping it drops nothing.
    pub(crate) fn detached() -> Self {
        Self {
            url: String::new(),
            name: String::new(),
        }
    }

    /// A connection pool to this database, for assertions on stored rows.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// The URL with host and port replaced, to route through a proxy.
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let options: PgConnectOptions = self.url.parse().expect("url");
        options
            .host(&addr.ip().to_string())
            .port(addr.port())
            .to_url_lossy()
            .to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on itself.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let server: PgConnectOptions = server_url().parse().expect("server url");
                if let Ok(mut conn) = server.connect().await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
