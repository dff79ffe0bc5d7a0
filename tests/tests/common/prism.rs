//! A real Prism mock server (`@stoplight/prism-cli`) for the contract tests.
//!
//! Prism reads an OpenAPI document, validates every request against it (path, query,
//! headers, security, body) and answers from the document's examples or schemas. A
//! contract test points a generated client at it, calls each operation and then asks
//! [`Prism::violations`] ([`Calls::finish`] does both): a generated client that puts on
//! the wire anything its own document forbids shows up there, with Prism's message
//! naming the field.
//!
//! Prism runs with `--errors`, so an invalid request gets an error response (422, or the
//! status the document gives for it) instead of a best-effort answer, and the call
//! fails too. Its log is read from both pipes into memory; a request's "Violation:" line
//! can come after its response is sent, so [`Prism::log`] first sends a marker request
//! and waits for Prism to log it, by which time every earlier line is in.
//!
//! The binary comes from `$POLVO_PRISM`, else `target/prism/node_modules/.bin/prism`
//! under the workspace root, where `scripts/prism.sh` installs it. A missing binary fails
//! the test with a message naming that script: a contract test never skips silently.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long Prism may take to parse a document and listen. It needs about three
/// seconds on an idle machine; the tests share two cores with other builds.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The line Prism logs once it accepts connections.
const LISTENING: &str = "Prism is listening on";

/// The line Prism logs for each request it receives.
const RECEIVED: &str = "Request received";

/// Markers of a request that broke the document: the summary line, then one line per
/// violation (`Violation: request.body.kind ...`).
const VIOLATION_MARKERS: [&str; 2] = ["Request did not pass the validation", "Violation:"];

/// The path of the marker requests that flush the log (no document has it).
const SYNC_PATH: &str = "/__polvo_prism_sync";

/// A running `prism mock`, killed on drop.
#[derive(Debug)]
pub(crate) struct Prism {
    port: u16,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    syncs: AtomicU32,
}

impl Prism {
    /// Starts Prism on `spec` (a path relative to the workspace root) on a free port
    /// and waits until it listens.
    pub(crate) fn start(spec: &str) -> Self {
        let root = workspace_root();
        let binary = binary(&root);
        let port = free_port();
        let spawned = Command::new(&binary)
            .arg("mock")
            .arg(root.join(spec))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--errors")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = spawned.unwrap_or_else(|error| {
            panic!(
                "cannot start {} ({error}); run scripts/prism.sh to install Prism",
                binary.display()
            )
        });

        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, lines.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, lines.clone());
        }
        let mut prism = Self {
            port,
            child,
            lines,
            syncs: AtomicU32::new(0),
        };
        prism.wait_listening();
        prism
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything Prism logged so far, once every request sent before this call is in.
    pub(crate) fn log(&self) -> Vec<String> {
        let marker = format!("{SYNC_PATH}/{}", self.syncs.fetch_add(1, Ordering::Relaxed));
        self.send_marker(&marker);

        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let lines = self.lines();
            if lines.iter().any(|l| l.contains(&marker)) {
                return lines;
            }
            thread::sleep(Duration::from_millis(10));
        }
        panic!("prism never logged the marker request {marker}")
    }

    /// The requests that broke the document, each as the block of log lines Prism wrote
    /// for it (from its "Request received" line on). Empty when all were valid.
    pub(crate) fn violations(&self) -> Vec<String> {
        requests(&self.log())
            .into_iter()
            .filter(|block| VIOLATION_MARKERS.iter().any(|m| block.contains(m)))
            .collect()
    }

    /// How many requests Prism received, marker requests left out.
    pub(crate) fn received(&self) -> usize {
        requests(&self.log())
            .iter()
            .filter(|block| !block.contains(SYNC_PATH))
            .count()
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.lines().iter().any(|l| l.contains(LISTENING)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "prism exited ({status}) before listening:\n{}",
                    self.lines().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "prism did not listen on port {} within {START_TIMEOUT:?}:\n{}",
            self.port,
            self.lines().join("\n")
        );
    }

    /// One plain HTTP/1.1 request, read to the end so Prism has answered it.
    fn send_marker(&self, path: &str) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|error| panic!("cannot reach prism on {addr}: {error}"));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .unwrap_or_else(|error| panic!("cannot send the marker request: {error}"));
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The calls a contract test makes, checked together at the end with [`Calls::finish`].
#[derive(Debug, Default)]
pub(crate) struct Calls {
    made: BTreeSet<String>,
    count: usize,
    failures: Vec<String>,
}

impl Calls {
    /// Records one call of `operation` (its `operationId`); returns the value when the
    /// call succeeded. A failure is kept for [`Calls::finish`], so one broken operation
    /// does not hide the others.
    pub(crate) fn check<T, E: Debug>(
        &mut self,
        operation: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        self.made.insert(operation.to_owned());
        self.count += 1;
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.failures.push(format!("{operation}: {error:?}"));
                None
            }
        }
    }

    /// Asserts that every operation of `spec` was called, that each call succeeded,
    /// that Prism received one request per call and found nothing wrong in any; all
    /// problems are reported in one message.
    #[track_caller]
    pub(crate) fn finish(self, prism: &Prism, spec: &str) {
        let ids = operation_ids(spec);
        let mut problems = Vec::new();
        let missing: Vec<&str> = ids
            .iter()
            .filter(|id| !self.made.contains(*id))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            problems.push(format!("operations never called: {}", missing.join(", ")));
        }
        let unknown: Vec<&str> = self
            .made
            .iter()
            .filter(|id| !ids.contains(id))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            problems.push(format!("operations not in {spec}: {}", unknown.join(", ")));
        }
        problems.extend(self.failures.iter().map(|f| format!("call failed: {f}")));
        problems.extend(
            prism
                .violations()
                .iter()
                .map(|v| format!("prism found a violation:\n{v}")),
        );
        let received = prism.received();
        if received != self.count {
            problems.push(format!(
                "prism received {received} requests for {} calls",
                self.count
            ));
        }
        assert!(
            problems.is_empty(),
            "{} problem(s) against {spec}:\n\n{}",
            problems.len(),
            problems.join("\n\n")
        );
    }
}

/// The operation ids of an OpenAPI document, sorted; read from its text (`operationId:`
/// lines) so that a test can check it calls them all.
pub(crate) fn operation_ids(spec: &str) -> Vec<String> {
    let path = workspace_root().join(spec);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let mut ids: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("operationId:"))
        .map(|id| id.trim().trim_matches(['\'', '"']).to_owned())
        .collect();
    ids.sort();
    ids
}

/// Splits a log into one block per request, each from its "Request received" line to
/// the line before the next one.
fn requests(lines: &[String]) -> Vec<String> {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in lines {
        if line.contains(RECEIVED) {
            blocks.push(Vec::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push(line);
        }
    }
    blocks.into_iter().map(|block| block.join("\n")).collect()
}

/// Reads `pipe` line by line into `lines` until Prism closes it.
fn collect(pipe: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `$POLVO_PRISM`, else the binary `scripts/prism.sh` installs.
fn binary(root: &Path) -> PathBuf {
    let path = match std::env::var_os("POLVO_PRISM") {
        Some(path) => PathBuf::from(path),
        None => root.join("target/prism/node_modules/.bin/prism"),
    };
    assert!(
        path.is_file(),
        "prism not found at {} (set by POLVO_PRISM or the default); run scripts/prism.sh \
         to install it there",
        path.display()
    );
    path
}

/// A port nobody listens on now (the OS picks it).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}
