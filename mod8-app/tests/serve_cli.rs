//! `mod8 serve` run as a process on the embedded defaults: it answers, prints one admin token
//! for its development key, and on SIGTERM it stops accepting but finishes the request in
//! flight before exiting 0.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the server if the test fails before it exits by itself.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started server's address, its log lines (stderr) and its stdout lines, as they arrive.
struct Started {
    server: Server,
    addr: SocketAddr,
    logs: mpsc::Receiver<String>,
    stdout: mpsc::Receiver<String>,
}

fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `mod8 serve` on a free port with no `MOD8_*` variables (embedded defaults, a
/// development key).
fn start() -> Started {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mod8"));
    command
        .args(["--json-logs", "serve", "--addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("MOD8_") {
            command.env_remove(key);
        }
    }
    let mut child = command.spawn().expect("the mod8 binary starts");
    let rx = lines(child.stderr.take().unwrap());
    let stdout = lines(child.stdout.take().unwrap());
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("mod8 serve logs its address within 60 s");
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if json["fields"]["message"] == "serving the mod8 API" {
            let addr = json["fields"]["addr"].as_str().unwrap().parse().unwrap();
            return Started {
                server,
                addr,
                logs: rx,
                stdout,
            };
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> String {
    get_with(addr, path, "")
}

/// GET with extra header lines (each ending in `\r\n`).
fn get_with(addr: SocketAddr, path: &str, headers: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: mod8\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn wait_for_exit(server: &mut Server, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = server.0.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn serve_prints_one_admin_token_on_stdout_and_never_logs_it() {
    let Started {
        server,
        addr,
        logs,
        stdout,
    } = start();
    let token = loop {
        let line = stdout
            .recv_timeout(Duration::from_secs(30))
            .expect("the admin token on stdout");
        if let Some(token) = line.strip_prefix("TOKEN=") {
            break token.to_owned();
        }
    };
    let without = get(addr, "/metrics");
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");
    let with = get_with(
        addr,
        "/metrics",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    assert!(
        with.contains("mod8_http_request_duration_seconds"),
        "{with}"
    );
    drop(server);
    let printed: Vec<String> = stdout.try_iter().collect();
    assert!(
        printed.iter().all(|l| !l.starts_with("TOKEN=")),
        "printed more than once: {printed:#?}"
    );
    let logged: Vec<String> = logs.try_iter().collect();
    assert!(
        logged.iter().all(|l| !l.contains(&token)),
        "the token reached the logs: {logged:#?}"
    );
}

#[test]
fn sigterm_drains_the_request_in_flight_then_exits_zero() {
    let Started {
        mut server,
        addr,
        logs,
        ..
    } = start();
    let health = get(addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // A registration whose body is only half sent when the signal arrives.
    let body = format!(
        r#"{{"username":"drain_{}","email":"drain@example.com"}}"#,
        std::process::id()
    );
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST /api/users HTTP/1.1\r\nHost: mod8\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{head}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let killed = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "the server exited with a request in flight"
    );
    // New connections are no longer served.
    if let Ok(mut late) = TcpStream::connect(addr) {
        late.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = write!(late, "GET /healthz HTTP/1.1\r\nHost: mod8\r\n\r\n");
        let mut buf = String::new();
        let _ = late.read_to_string(&mut buf);
        assert!(
            !buf.starts_with("HTTP/1.1 200"),
            "served after SIGTERM: {buf}"
        );
    }

    // The request in flight completes.
    stream.write_all(tail.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    let status = wait_for_exit(&mut server, Duration::from_secs(30))
        .expect("mod8 serve exits within 30 s of SIGTERM once drained");
    assert!(status.success(), "exit status {status}");
    let logged: Vec<String> = logs.try_iter().collect();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("shutdown signal received; draining")),
        "{logged:#?}"
    );
}
