//! Reservation latency of the in-memory store and the Redis store, through the
//! `QuotaStore` trait, and the reservations per second the Redis store sustains with 8
//! concurrent callers.
//!
//! The bench starts its own `redis-server` on a free loopback port (no persistence) and
//! kills it at the end; `scripts/redis.sh` installs the binary. The limit is far above
//! the request rate, so every reservation is granted at once and what is measured is the
//! store alone: a lock for the in-memory store, a round trip and a Lua script for Redis.
//! Size with `POLVO_BENCH_RESERVATIONS` (default 20000 for Redis, 10 times that in
//! memory) and `POLVO_BENCH_SECONDS` (default 3, for the concurrent run).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use polvo_runtime::{BucketRef, Limit, MemoryStore, QuotaStore, RedisStore, ReserveRequest};
use tokio::runtime::Runtime;

/// Callers of the concurrent run.
const CALLERS: usize = 8;

/// A `redis-server` killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> (Server, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts (run scripts/redis.sh to install it)");
    let server = Server(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, port)
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A limit no loop here can reach: a million units per second, a burst of a thousand.
fn limits() -> [Limit; 1] {
    let limit = Limit::new(1_000_000, Duration::from_secs(1)).expect("valid limit");
    [limit.with_burst(1000).expect("valid burst")]
}

async fn reserve_once(store: &dyn QuotaStore, limits: &[Limit]) {
    let buckets = [BucketRef {
        key: "bench:default",
        limits,
    }];
    let request = ReserveRequest {
        buckets: &buckets,
        cost: 1,
        max_wait: None,
    };
    store.reserve(request).await.expect("reserved");
}

/// Latencies of `n` reservations one after another, sorted.
async fn latencies(store: &dyn QuotaStore, n: u64) -> Vec<Duration> {
    let limits = limits();
    let mut all = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let began = Instant::now();
        reserve_once(store, &limits).await;
        all.push(began.elapsed());
    }
    all.sort();
    all
}

/// Reservations per second of `CALLERS` tasks reserving for `seconds`.
///
/// Each caller checks the deadline itself and yields after every reservation: an
/// in-memory reservation never waits, so callers that did not yield would keep the
/// workers from ever running a timer (the run would not end) or another caller.
async fn throughput(store: Arc<dyn QuotaStore>, seconds: u64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let deadline = began + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (store, done) = (store.clone(), done.clone());
            tokio::spawn(async move {
                let limits = limits();
                while Instant::now() < deadline {
                    reserve_once(store.as_ref(), &limits).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller finished");
    }
    done.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
fn report(name: &str, sorted: &[Duration]) {
    let mean = sorted.iter().sum::<Duration>() / sorted.len().max(1) as u32;
    println!(
        "  {name:<12} mean {:>9.2?}  p50 {:>9.2?}  p99 {:>9.2?}  ({} reservations)",
        mean,
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        sorted.len(),
    );
}

#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
fn main() {
    let reservations = env_or("POLVO_BENCH_RESERVATIONS", 20_000);
    let seconds = env_or("POLVO_BENCH_SECONDS", 3);
    let (_server, port) = start_redis();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let memory: Arc<dyn QuotaStore> = Arc::new(MemoryStore::new());
    let redis: Arc<dyn QuotaStore> = Arc::new(
        RedisStore::builder(format!("redis://127.0.0.1:{port}"))
            .build()
            .expect("redis store"),
    );

    run(&rt, &memory, &redis, reservations, seconds);
}

#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
fn run(
    rt: &Runtime,
    memory: &Arc<dyn QuotaStore>,
    redis: &Arc<dyn QuotaStore>,
    reservations: u64,
    seconds: u64,
) {
    // Warm up: the first Redis call connects and loads the script.
    rt.block_on(latencies(redis.as_ref(), 100));

    println!("\nquota store: latency of one reservation through QuotaStore, one caller");
    let in_memory = rt.block_on(latencies(memory.as_ref(), reservations * 10));
    report("MemoryStore", &in_memory);
    let on_redis = rt.block_on(latencies(redis.as_ref(), reservations));
    report("RedisStore", &on_redis);
    let ratio =
        percentile(&on_redis, 0.5).as_secs_f64() / percentile(&in_memory, 0.5).as_secs_f64();
    println!("  RedisStore p50 is {ratio:.0}x MemoryStore's (a loopback round trip and a script)");

    println!("\nquota store: reservations per second, {CALLERS} concurrent callers, {seconds} s");
    let memory_rate = rt.block_on(throughput(memory.clone(), seconds));
    println!("  MemoryStore  {memory_rate:>12.0} reservations/s");
    let redis_rate = rt.block_on(throughput(redis.clone(), seconds));
    println!("  RedisStore   {redis_rate:>12.0} reservations/s");
}
