//! A real `redis-server` for the shared-quota tests, on a free loopback port, and a real
//! three-master Redis Cluster made of such servers.
//!
//! Each test starts its own server or cluster (no persistence, bound to 127.0.0.1) and
//! every server is killed when its handle drops, a panicking test included. There is no
//! mock: the point of these tests is the Lua script running on the real thing. A missing
//! binary fails the test with a message naming `scripts/redis.sh`, which installs it
//! (`redis-cli` comes with `redis-server`).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How many sets of free ports to try before a test gives up on starting Redis.
const ATTEMPTS: usize = 5;

/// A running `redis-server`, killed on drop.
#[derive(Debug)]
pub(crate) struct RedisServer {
    port: u16,
    /// Arguments beyond the port and the no-persistence defaults.
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// A free port can be taken by a server of a test running alongside before this one
    /// binds it; the server then exits at once, and another port is tried.
    pub(crate) fn start() -> Self {
        for _ in 0..ATTEMPTS {
            if let Some(server) = Self::start_with(free_ports::<1>()[0], Vec::new()) {
                return server;
            }
        }
        panic!("redis-server did not start on any of {ATTEMPTS} free ports");
    }

    /// A server on `port`, or `None` when it exited before answering (port taken).
    fn start_with(port: u16, extra: Vec<String>) -> Option<Self> {
        let mut server = Self {
            port,
            extra,
            child: None,
        };
        server.spawn().then_some(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would: no shutdown, no save).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP): connections are still accepted by the kernel but
    /// nothing is answered, as with a server stuck on a slow command or a full swap.
    pub(crate) fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen process run again (SIGCONT); it answers what queued up meanwhile.
    pub(crate) fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
    }

    /// Starts the server again on the same port, empty.
    pub(crate) fn restart(&mut self) {
        for _ in 0..ATTEMPTS {
            if self.spawn() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not start again on port {}", self.port);
    }

    /// Starts the process and waits for `PING`; false when it exited first.
    fn spawn(&mut self) -> bool {
        self.kill();
        let spawned = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = spawned.unwrap_or_else(|error| {
            panic!(
                "cannot start redis-server ({error}); run scripts/redis.sh to install it \
                 (as root it runs `apt-get install -y redis-server`)"
            )
        });
        self.child = Some(child);
        self.wait_ready()
    }

    /// Sends one command and returns the raw reply.
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let client = redis::Client::open(self.url()).expect("redis url");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command
            .query_async(&mut connection)
            .await
            .expect("redis reply")
    }

    /// Whether the server answered `PING` while its process was still running (a `PONG`
    /// after it exited would come from some other test's server on the port).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let exited = self
                .child
                .as_mut()
                .is_none_or(|child| !matches!(child.try_wait(), Ok(None)));
            if exited {
                self.child = None;
                return false;
            }
            if self.ping() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a frozen process too, so a test that panics mid-freeze leaves
        // nothing behind.
        self.kill();
    }
}

/// A Redis Cluster of three masters and no replicas on loopback, each master a
/// [`RedisServer`]; all are killed on drop and their cluster files removed.
#[derive(Debug)]
pub(crate) struct RedisCluster {
    // Declared before `dir` so the servers die before their directory goes.
    nodes: Vec<RedisServer>,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    /// Starts three servers in cluster mode, joins them with `redis-cli --cluster
    /// create` (slots split in three even ranges) and waits until every node reports
    /// `cluster_state:ok`.
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Three client ports and three bus ports: the default bus port (port + 10000)
        // may not exist for an ephemeral port.
        let nodes = (0..ATTEMPTS)
            .find_map(|_| {
                let ports = free_ports::<6>();
                let node = |i: usize| {
                    let (port, bus) = (ports[i], ports[i + 3]);
                    RedisServer::start_with(port, cluster_args(dir.path(), port, bus))
                };
                // Any node whose port was taken meanwhile: all of them again, elsewhere.
                (0..3).map(node).collect::<Option<Vec<_>>>()
            })
            .unwrap_or_else(|| panic!("no Redis Cluster after {ATTEMPTS} sets of ports"));
        let cluster = Self { nodes, dir };
        cluster.create();
        cluster.wait_ok();
        cluster
    }

    /// One `redis://127.0.0.1:PORT` per node, as a store's seed list.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The keys matching `pattern` that each node holds itself, node by node.
    pub(crate) async fn keys_per_node(&self, pattern: &str) -> Vec<Vec<String>> {
        let mut keys = Vec::new();
        for node in &self.nodes {
            keys.push(node.query(&["KEYS", pattern]).await);
        }
        keys
    }

    fn create(&self) {
        let addresses = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port));
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run redis-cli ({error})"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self
                .nodes
                .iter()
                .all(|n| cluster_info(n.port).contains("cluster_state:ok"))
            {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let states: Vec<String> = self.nodes.iter().map(|n| cluster_info(n.port)).collect();
        panic!("the redis cluster did not reach cluster_state:ok: {states:#?}");
    }
}

fn cluster_args(dir: &Path, port: u16, bus: u16) -> Vec<String> {
    let settings = [
        ("--cluster-enabled", "yes".to_owned()),
        ("--cluster-config-file", format!("nodes-{port}.conf")),
        ("--cluster-port", bus.to_string()),
        ("--dir", dir.to_string_lossy().into_owned()),
    ];
    let pairs = settings.into_iter();
    pairs
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
}

/// `CLUSTER INFO` of the node on `port`, or the error that kept it from answering.
fn cluster_info(port: u16) -> String {
    let output = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "CLUSTER",
            "INFO",
        ])
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(error) => format!("cannot run redis-cli ({error})"),
    }
}

/// `N` distinct ports nobody listens on now (the OS picks them; all are held until
/// every one is picked, so none comes twice).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local address").port())
}
