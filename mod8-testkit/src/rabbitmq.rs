//! Stopping and starting the local RabbitMQ application for fault tests
//! (`rabbitmqctl stop_app` / `start_app`; needs root next to the broker, as CI has).
//!
//! A test that stops the broker belongs in a test file of its own: cargo runs test binaries one
//! after another, so no other suite is using the broker meanwhile.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `rabbitmqctl` with `args`.
///
/// # Panics
///
/// When it cannot run or fails (its output is in the message).
pub fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (fault tests need it, as root, next to the broker)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A guard over the RabbitMQ application: [`BrokerGuard::stop`] stops it, [`BrokerGuard::start`]
/// starts it and waits until it answers, and dropping the guard while stopped (a failed
/// assertion unwinding, say) starts it again, so a failing test never leaves it down.
#[derive(Debug, Default)]
pub struct BrokerGuard {
    stopped: AtomicBool,
}

impl BrokerGuard {
    /// A guard over a running broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// `rabbitmqctl stop_app`.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        rabbitmqctl(&["stop_app"]);
    }

    /// `rabbitmqctl start_app`, then waits (up to 60 s) for it to be up.
    pub fn start(&self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup", "--timeout", "60"]);
        self.stopped.store(false, Ordering::SeqCst);
    }
}

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        if self.stopped.load(Ordering::SeqCst) {
            eprintln!("starting the RabbitMQ application again (guard)");
            let ok = Command::new("rabbitmqctl")
                .arg("start_app")
                .status()
                .is_ok_and(|s| s.success())
                && Command::new("rabbitmqctl")
                    .args(["await_startup", "--timeout", "60"])
                    .status()
                    .is_ok_and(|s| s.success());
            if !ok && !std::thread::panicking() {
                panic!("could not start the RabbitMQ application again");
            }
        }
    }
}
