//! Wake-ups finer than tokio's timer, for pacing right at a strict server's limit.
//!
//! Design note (2026-12): tokio's timer has 1 ms ticks and fires when a worker gets round
//! to it. In the bulk benchmark (500/s on two busy cores) paced waiters woke 0 to 2 ms
//! after their slot, about 1 ms on average. Against a server that tolerates no early
//! request at all, that jitter is what limits the rate: in the throttle benchmark polvo
//! reached 66 % of it. With precise wake-ups (`PolicyBuilder::precise_wakeups`) a waiter
//! sleeps on tokio's timer until a few milliseconds before its slot, then on this
//! module's timer: one thread that sleeps on the operating system's timer (tens of
//! microseconds of slack) and wakes the waiters whose time has come. In the bulk
//! benchmark 99 % of waiters then woke within 200 µs of their slot. What is left is the
//! machine: a loop sleeping 200 µs at a time on the idle two-core VM saw pauses of 1.2
//! to 2.9 ms a few times in 8 s, and no timer wakes anyone during those.
//!
//! It is on by default (`PolicyBuilder::precise_wakeups` sets the window or turns it
//! off). On its own it did not help against a server tolerating one request early (3 to
//! 6 429s in 5,000, against 0 to 2 on tokio's timer): requests on their slots have no
//! lateness in hand when one of those pauses bunches them up. What made the difference
//! is the limiter treating a waiter late by more than an eighth of a slot as a sign of
//! such a pause and moving the later slots back by all of it; together, 0 429s there
//! and 87 % of the rate against a server tolerating nothing (95 % once a refused
//! request was resent in its slot, `Limiter::resend_in_slot`; on tokio's timer alone
//! waiters are too late for that and it stays at 66 %).
//!
//! The thread starts on first use. Where it cannot be started, waits fall back to tokio's
//! timer.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The waiters' queue and the signal that a new one may be the earliest.
#[derive(Debug, Default)]
struct Timer {
    queue: Mutex<BinaryHeap<Due>>,
    signal: Condvar,
}

/// One registered wake-up.
#[derive(Debug)]
struct Due {
    at: Instant,
    entry: Arc<Entry>,
}

/// Whether a wake-up fired, and whom to wake.
#[derive(Debug, Default)]
struct Entry {
    state: Mutex<(bool, Option<Waker>)>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    /// Earliest first, for the max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

impl Entry {
    fn fire(&self) {
        let waker = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.0 = true;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Timer {
    /// The process's timer thread, started on first use; `None` if it could not start.
    fn get() -> Option<&'static Arc<Self>> {
        static TIMER: OnceLock<Option<Arc<Timer>>> = OnceLock::new();
        TIMER.get_or_init(Self::start).as_ref()
    }

    fn start() -> Option<Arc<Self>> {
        let timer = Arc::new(Self::default());
        let run = timer.clone();
        let spawned = std::thread::Builder::new()
            .name("polvo-timer".to_owned())
            .spawn(move || run.run());
        match spawned {
            Ok(_) => Some(timer),
            Err(error) => {
                tracing::debug!(%error, "no timer thread; precise wake-ups use tokio's timer");
                None
            }
        }
    }

    /// Fires every due wake-up, then sleeps until the next one or a new registration.
    fn run(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = Instant::now();
            while queue.peek().is_some_and(|due| due.at <= now) {
                if let Some(due) = queue.pop() {
                    due.entry.fire();
                }
            }
            queue = match queue.peek().map(|due| due.at - now) {
                Some(wait) => match self.signal.wait_timeout(queue, wait) {
                    Ok((queue, _)) => queue,
                    Err(poisoned) => poisoned.into_inner().0,
                },
                None => self
                    .signal
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    fn register(&self, at: Instant, entry: Arc<Entry>) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = queue.peek().is_none_or(|due| at < due.at);
        queue.push(Due { at, entry });
        drop(queue);
        if earliest {
            self.signal.notify_one();
        }
    }
}

/// Completes at `at` on the operating system's clock, give or take its timer slack.
#[derive(Debug)]
struct Sleep {
    at: Instant,
    entry: Option<Arc<Entry>>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        let Some(timer) = Timer::get() else {
            return Poll::Ready(());
        };
        let entry = self.entry.get_or_insert_with(Arc::default).clone();
        let mut state = entry.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 {
            return Poll::Ready(());
        }
        let first = state.1.is_none();
        state.1 = Some(cx.waker().clone());
        drop(state);
        if first {
            timer.register(self.at, entry);
        }
        Poll::Pending
    }
}

/// Whether tokio's clock follows real time, rather than being paused as in a test.
///
/// A paused clock stands still between two reads unless the runtime idles, so it is read
/// on both sides of a 2 µs spin. Waiting on real time there would let the paused clock
/// jump ahead to some other timer meanwhile, and the waiter would wake that much late.
fn tokio_clock_runs() -> bool {
    let (tokio, real) = (tokio::time::Instant::now(), Instant::now());
    while real.elapsed() < Duration::from_micros(2) {
        std::hint::spin_loop();
    }
    tokio::time::Instant::now() > tokio
}

/// Sleeps until `wake` on tokio's timer, the last `window` of it on the precise timer.
///
/// The precise timer counts real time, so on a paused tokio clock tokio's timer keeps
/// the whole wait.
pub(crate) async fn sleep_until(wake: tokio::time::Instant, window: Option<Duration>) {
    let Some(window) = window else {
        return tokio::time::sleep_until(wake).await;
    };
    tokio::time::sleep_until(wake.checked_sub(window).unwrap_or(wake)).await;
    let at = wake.into_std();
    let near = at.saturating_duration_since(Instant::now()) <= window;
    if near && tokio_clock_runs() && Timer::get().is_some() {
        Sleep { at, entry: None }.await;
    }
    if tokio::time::Instant::now() < wake {
        tokio::time::sleep_until(wake).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_at_the_deadline_not_before() {
        let start = tokio::time::Instant::now();
        let wake = start + Duration::from_millis(5);
        sleep_until(wake, Some(Duration::from_millis(3))).await;
        assert!(tokio::time::Instant::now() >= wake);
    }

    #[tokio::test]
    async fn many_sleepers_each_wake_in_time() {
        let start = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..50u64)
            .map(|i| {
                let wake = start + Duration::from_micros(200 * (50 - i));
                tokio::spawn(async move {
                    sleep_until(wake, Some(Duration::from_millis(20))).await;
                    tokio::time::Instant::now() >= wake
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.expect("task"), "woke before its deadline");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_paused_clock_the_deadline_is_kept_exactly() {
        let start = tokio::time::Instant::now();
        let wake = start + Duration::from_secs(3);
        sleep_until(wake, Some(Duration::from_millis(2))).await;
        assert_eq!(tokio::time::Instant::now(), wake);
    }
}
