//! A Postgres cluster of a test's own, on a free loopback port under the
//! temp dir, which the test may crash and start again without touching the
//! server every other test shares.
//!
//! Postgres refuses to run as root, so when the tests run as root (as CI
//! does) the cluster belongs to the `postgres` user (else `nobody`) and
//! `initdb`/`pg_ctl` run as that user.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

/// A cluster of the test's own; dropping it stops the server and removes
/// its files.
pub struct PrivateCluster {
    server: Server,
}

/// Where a cluster lives and who runs it: cheap to clone into blocking
/// tasks.
#[derive(Clone)]
struct Server {
    dir: PathBuf,
    port: u16,
    /// The (uid, gid) the server runs as when the tests run as root.
    owner: Option<(u32, u32)>,
}

impl PrivateCluster {
    /// Creates and starts a new cluster (a few seconds: `initdb`).
    pub async fn start() -> Self {
        let server = tokio::task::spawn_blocking(Server::create)
            .await
            .expect("the cluster starts");
        Self { server }
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.server.port)
            .username("postgres")
            .database(database)
            .to_url_lossy()
            .to_string()
    }

    /// Creates `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let mut conn = self
            .url("postgres")
            .parse::<PgConnectOptions>()
            .expect("cluster url")
            .connect()
            .await
            .expect("connect to the private cluster");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        self.url(name)
    }

    /// `pg_ctl stop -m immediate`: every backend killed at once, no
    /// checkpoint, crash recovery at the next start (what a crash of the
    /// database server does).
    pub async fn stop_immediately(&self) {
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || server.stop_immediately())
            .await
            .expect("pg_ctl stop");
    }

    /// Starts the server again and waits until it accepts connections.
    pub async fn start_again(&self) {
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || server.start())
            .await
            .expect("pg_ctl start");
    }
}

impl Server {
    fn create() -> Self {
        assert!(
            tool("initdb").is_some() && tool("pg_ctl").is_some(),
            "a private Postgres cluster needs initdb and pg_ctl, on PATH or under \
             /usr/lib/postgresql/<version>/bin"
        );
        let dir = std::env::temp_dir().join(format!(
            "onestop-private-postgres-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        let owner = unprivileged_owner();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the cluster dir");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let server = Self { dir, port, owner };
        server.run(
            "initdb",
            &[
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
                &server.data(),
            ],
        );
        server.start();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
            ],
        );
    }

    fn stop_immediately(&self) {
        self.run("pg_ctl", &["stop", "-m", "immediate", "-D", &self.data()]);
    }

    /// A Postgres tool run as the cluster's owner.
    fn command(&self, name: &str) -> Command {
        let mut command = Command::new(tool(name).unwrap_or_else(|| name.into()));
        command.current_dir(&self.dir).stdin(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Runs a Postgres tool; panics with its output when it fails.
    fn run(&self, tool: &str, args: &[&str]) {
        let output = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let server = &self.server;
        if std::path::Path::new(&server.data())
            .join("postmaster.pid")
            .exists()
        {
            let _ = server
                .command("pg_ctl")
                .args(["stop", "-m", "immediate", "-D", &server.data()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&server.dir);
    }
}

/// Who runs the server when the tests run as root: `postgres`, else
/// `nobody`; `None` when the tests run as an ordinary user.
fn unprivileged_owner() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let output = Command::new("id").args(args).output().ok()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    ["postgres", "nobody"].iter().find_map(|user| {
        let uid = id(&["-u", user])?;
        let gid = id(&["-g", user])?;
        Some((uid, gid))
    })
}

/// Where the Postgres tool `name` is: on PATH, else in the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's packages keep it there).
fn tool(name: &str) -> Option<PathBuf> {
    if Command::new(name).arg("--version").output().is_ok() {
        return Some(name.into());
    }
    let mut installed: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let path = entry.path().join("bin").join(name);
            path.exists().then_some((version, path))
        })
        .collect();
    installed.sort();
    installed.pop().map(|(_, path)| path)
}
