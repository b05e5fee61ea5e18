//! Several `mod8 serve` processes on one machine, each with its [`Role`]: what `mod8 bench
//! --instances` drives and what the multi-process test runs. Each process logs (JSON lines) to
//! a file of its own; it counts as started once it logs the address it serves on. Every
//! process still running is killed when the [`Cluster`] is dropped, so a failing caller
//! leaves none behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Role;

/// How long a process may take to log its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`Cluster::stop_all`] waits for a process to exit after SIGTERM before killing it.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// One `mod8 serve --role ...` process.
#[derive(Debug)]
pub struct Instance {
    /// What it runs.
    pub role: Role,
    /// Where it serves HTTP (the API, or for a worker `/healthz` and `/metrics`).
    pub addr: SocketAddr,
    /// Its log file (JSON lines).
    pub log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `http://addr`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Processes of one `mod8` binary sharing one environment (same backends, same keys).
#[derive(Debug)]
pub struct Cluster {
    exe: PathBuf,
    env: Vec<(String, String)>,
    clear_mod8_env: bool,
    log_dir: PathBuf,
    instances: Vec<Instance>,
    started: usize,
}

impl Cluster {
    /// Processes of the binary `exe`, with `env` set on top of this process's environment,
    /// logging into `log_dir` (which must exist). With `clear_mod8_env`, the inherited
    /// `MOD8_*` variables are removed first, so only `env` configures them.
    pub fn new(
        exe: impl Into<PathBuf>,
        env: Vec<(String, String)>,
        clear_mod8_env: bool,
        log_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            exe: exe.into(),
            env,
            clear_mod8_env,
            log_dir: log_dir.into(),
            instances: Vec::new(),
            started: 0,
        }
    }

    /// The instances, in the order they were first spawned.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The instance `index` (as [`Cluster::spawn`] returned it).
    ///
    /// # Errors
    ///
    /// No instance has that index.
    pub fn instance(&self, index: usize) -> anyhow::Result<&Instance> {
        self.instances
            .get(index)
            .with_context(|| format!("no instance {index}"))
    }

    /// Base URLs of the running instances of `role`.
    pub fn urls(&self, role: Role) -> Vec<String> {
        self.instances
            .iter()
            .filter(|i| i.role == role && i.child.is_some())
            .map(Instance::base_url)
            .collect()
    }

    /// Starts `mod8 serve --role ROLE --addr 127.0.0.1:0` and waits until it logs its
    /// address; returns its index.
    ///
    /// # Errors
    ///
    /// The process cannot start, exits, or does not log its address within
    /// [`START_TIMEOUT`] (the error carries the end of its log).
    pub async fn spawn(&mut self, role: Role) -> anyhow::Result<usize> {
        let (child, addr, log) = self.start_process(role).await?;
        self.instances.push(Instance {
            role,
            addr,
            log,
            child: Some(child),
        });
        Ok(self.instances.len() - 1)
    }

    /// Kills instance `index` with SIGKILL (no drain, no acknowledgement of what it holds)
    /// and waits for it to exit.
    ///
    /// # Errors
    ///
    /// No such instance, or the signal cannot be sent.
    pub fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        let instance = self
            .instances
            .get_mut(index)
            .with_context(|| format!("no instance {index}"))?;
        if let Some(mut child) = instance.child.take() {
            child.kill().context("sending SIGKILL")?;
            child.wait().context("waiting for the killed process")?;
        }
        Ok(())
    }

    /// Starts instance `index` again (a new process of the same role, on a new port), after
    /// [`Cluster::kill`]; a running instance is killed first.
    ///
    /// # Errors
    ///
    /// As [`Cluster::spawn`].
    pub async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill(index)?;
        let role = self.instance(index)?.role;
        let (child, addr, log) = self.start_process(role).await?;
        let instance = &mut self.instances[index];
        instance.child = Some(child);
        instance.addr = addr;
        instance.log = log;
        Ok(())
    }

    /// Stops every running instance: SIGTERM (each drains its requests and consumers), then
    /// SIGKILL for one still running after [`STOP_TIMEOUT`]. Returns the instances that had
    /// to be killed.
    pub async fn stop_all(&mut self) -> Vec<usize> {
        for instance in &self.instances {
            if let Some(pid) = instance.pid() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut killed = Vec::new();
        for (index, instance) in self.instances.iter_mut().enumerate() {
            let Some(mut child) = instance.child.take() else {
                continue;
            };
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        killed.push(index);
                        break;
                    }
                }
            }
        }
        killed
    }

    async fn start_process(&mut self, role: Role) -> anyhow::Result<(Child, SocketAddr, PathBuf)> {
        self.started += 1;
        let log = self
            .log_dir
            .join(format!("{}-{}.log", role.as_str(), self.started));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("creating the log file {}", log.display()))?;
        let mut command = Command::new(&self.exe);
        if self.clear_mod8_env {
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("MOD8_") {
                    command.env_remove(key);
                }
            }
        }
        command
            .args([
                "--json-logs",
                "serve",
                "--role",
                role.as_str(),
                "--addr",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(addr) = serving_addr(&log) {
                return Ok((child, addr, log));
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let why = match exited {
                    Some(status) => format!("exited ({status})"),
                    None => format!("did not log its address within {START_TIMEOUT:?}"),
                };
                anyhow::bail!(
                    "mod8 serve --role {role} {why}; its log ends:\n{}",
                    tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for instance in &mut self.instances {
            if let Some(mut child) = instance.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The address in the `serving the mod8 API` line of a JSON log, once it is there.
fn serving_addr(log: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(|line| {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        if json["fields"]["message"] != "serving the mod8 API" {
            return None;
        }
        json["fields"]["addr"].as_str()?.parse().ok()
    })
}

/// The last lines of a log, for an error message.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
