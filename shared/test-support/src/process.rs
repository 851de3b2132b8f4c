//! Runs a real service binary as a child process and learns its address
//! from its "listening" log line.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct ServiceProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every line the process wrote to stdout (its log) so far.
    output: Arc<Mutex<Vec<String>>>,
}

impl ServiceProcess {
    /// Starts `binary` with `env` on 127.0.0.1:0 in development mode
    /// (`env` may turn it off) and waits until it listens.
    pub async fn spawn(binary: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_unset(binary, env, &[]).await
    }

    /// As `spawn`, with the variables in `unset` removed from the
    /// environment (to run a binary on its defaults).
    pub async fn spawn_unset(binary: &str, env: &[(&str, &str)], unset: &[&str]) -> Self {
        let mut command = Command::new(binary);
        command
            .env("ONESTOP_LISTEN", "127.0.0.1:0")
            .env("ONESTOP_DEV_MODE", "true")
            .env("RUST_LOG", "info")
            .env_remove("ONESTOP_LOG_FORMAT")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        for key in unset {
            command.env_remove(key);
        }
        let mut child = command.spawn().expect("service binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let output = Arc::new(Mutex::new(Vec::new()));
        let keep = |line: &str| output.lock().expect("output").push(line.to_owned());
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&line);
                if line.contains("listening")
                    && let Some(addr) = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix("addr="))
                        .and_then(|addr| addr.parse().ok())
                {
                    return Some(addr);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "{binary} logged no listening address; it logged: {:?}",
                output.lock().expect("output")
            )
        });
        // Keep draining stdout so the child never blocks on a full pipe.
        let kept = output.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().expect("output").push(line);
            }
        });
        Self {
            child,
            addr,
            output,
        }
    }

    /// The process's log lines so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().expect("output").clone()
    }

    /// Sends SIGTERM, waits (at most `within`) for the process to exit and
    /// for its last log line, and returns its exit status and every line.
    pub async fn terminate_and_collect(
        mut self,
        within: Duration,
    ) -> (std::process::ExitStatus, Vec<String>) {
        self.terminate();
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("exit status");
        // The reader task sees end of file once the process is gone.
        let _ = tokio::time::timeout(within, async {
            while Arc::strong_count(&self.output) > 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        (status, self.output())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal named `name` (`TERM`, `STOP`, `CONT`, ...).
    pub fn signal(&self, name: &str) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args([&format!("-{name}"), &pid.to_string()])
                .status();
        }
    }

    /// Whether the process is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
