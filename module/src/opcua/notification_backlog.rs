//! Back-pressure between a session's publish loop and the writers that consume its
//! notifications.
//!
//! The server answers each Publish at once while it holds values, so at a publishing interval
//! of 500 ms, 10k items sampled at 10 Hz arrive as 50k values within a few milliseconds. The
//! client decodes them faster than a writer turns them into messages (≈ 100 bytes per decoded
//! value), and a burst sat in memory: ≈ 5 MB, which was most of the publisher's memory per
//! item at that rate. The backlog counts publish responses handed to writers and not yet
//! processed; the session's next Publish request waits while too many are, so the rest of the
//! burst waits in the server's queues (sized by the items' QueueSize for that purpose).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opcua::client::PublishGate;
use tokio::sync::Notify;
use tracing::warn;

/// Publish responses (≤ 500 values each) per subscription that may wait for writers before
/// the session asks for more; the limit grows with the subscriptions, since their writers work
/// in parallel. Measured with `iiot bench relay` (10k × 10 Hz: ≈ 460 B per item with 8, ≈ 540
/// with 16, 600–880 B without a limit). Fewer starve the server of Publish requests: it
/// answers them for one subscription until that runs dry, so one writer takes a whole burst.
const WAITING_PER_SUBSCRIPTION: usize = 8;
/// The longest a Publish request is held back. A writer busy elsewhere (creating 100k
/// monitored items takes about a second) must not starve the server of Publish requests: it
/// would drop values from full queues or end the subscription.
const MAX_HOLD: Duration = Duration::from_millis(250);
/// Past [`MAX_HOLD`] a request goes out anyway, but only while fewer than this many times the
/// limit wait: a writer that stays stuck (its outbox waiting for a stalled disk) must not let
/// decoded responses pile up in memory without end. At the cap the next Publish waits for the
/// writers however long that takes; the values wait in the server's queues, and if the stall
/// outlasts the subscription's lifetime the server ends it and the writer's watchdog creates
/// it again. 8 × 8 responses of ≤ 500 values is ≈ 3 MB per subscription at most.
const HARD_LIMIT_FACTOR: usize = 8;

/// Saturations of every backlog in the process, for `/metrics`: backlogs live and die with
/// sessions, and the count must outlive them.
static SATURATIONS_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Times any session's Publish requests waited at the hard cap since the process started.
pub fn saturations_total() -> u64 {
    SATURATIONS_TOTAL.load(Ordering::Relaxed)
}

/// One per session; shared by the forwarders of every subscription on it.
#[derive(Debug)]
pub struct NotificationBacklog {
    waiting: AtomicUsize,
    /// Subscriptions counting in this backlog (their forwarders hold a [`Subscribed`]).
    subscriptions: AtomicUsize,
    per_subscription: usize,
    max_hold: Duration,
    drained: Notify,
    /// Times a Publish request waited at the hard cap (see [`HARD_LIMIT_FACTOR`]).
    saturations: AtomicU64,
}

impl Default for NotificationBacklog {
    fn default() -> Self {
        Self::new(WAITING_PER_SUBSCRIPTION, MAX_HOLD)
    }
}

impl NotificationBacklog {
    pub fn new(per_subscription: usize, max_hold: Duration) -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            subscriptions: AtomicUsize::new(0),
            per_subscription: per_subscription.max(1),
            max_hold,
            drained: Notify::new(),
            saturations: AtomicU64::new(0),
        }
    }

    /// Counts one subscription, raising the limit, until the token is dropped.
    pub fn subscribe(self: &Arc<Self>) -> Subscribed {
        self.subscriptions.fetch_add(1, Ordering::AcqRel);
        Subscribed(self.clone())
    }

    fn limit(&self) -> usize {
        self.per_subscription * self.subscriptions.load(Ordering::Acquire).max(1)
    }

    /// Counts one publish response until the returned token is dropped (when the writer has
    /// processed it, or discarded it).
    pub fn hold(self: &Arc<Self>) -> Held {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        Held(self.clone())
    }

    /// Publish responses handed out and not yet processed.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Times a Publish request had to wait at the hard cap because the writers stayed
    /// behind past the bounded hold.
    pub fn saturations(&self) -> u64 {
        self.saturations.load(Ordering::Relaxed)
    }

    async fn wait_for_room(&self) {
        let deadline = tokio::time::Instant::now() + self.max_hold;
        let mut saturated = false;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a release between check and wait is not missed.
            drained.as_mut().enable();
            let waiting = self.waiting();
            let limit = self.limit();
            if waiting < limit {
                return;
            }
            let past_hold = tokio::time::Instant::now() >= deadline;
            if past_hold && waiting < limit.saturating_mul(HARD_LIMIT_FACTOR) {
                return;
            }
            if past_hold {
                if !saturated {
                    saturated = true;
                    self.saturations.fetch_add(1, Ordering::Relaxed);
                    SATURATIONS_TOTAL.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        waiting,
                        "writers stay behind their OPC UA notifications; no Publish request until they catch up"
                    );
                }
                drained.await;
            } else {
                // Woken by a release or by the end of the hold; either way check again.
                let _ = tokio::time::timeout_at(deadline, drained).await;
            }
        }
    }
}

impl PublishGate for NotificationBacklog {
    fn ready(&self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.wait_for_room())
    }
}

/// One publish response counted in a [`NotificationBacklog`].
#[derive(Debug)]
pub struct Held(Arc<NotificationBacklog>);

impl Drop for Held {
    fn drop(&mut self) {
        let before = self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        let limit = self.0.limit();
        // Waiters care about two crossings: below the limit, and below the hard cap.
        if before <= limit || before == limit.saturating_mul(HARD_LIMIT_FACTOR) {
            self.0.drained.notify_waiters();
        }
    }
}

/// One subscription counted in a [`NotificationBacklog`]'s limit.
#[derive(Debug)]
pub struct Subscribed(Arc<NotificationBacklog>);

impl Subscribed {
    pub fn backlog(&self) -> &Arc<NotificationBacklog> {
        &self.0
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.subscriptions.fetch_sub(1, Ordering::AcqRel);
        self.0.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_waits_until_a_response_is_processed() {
        let backlog = Arc::new(NotificationBacklog::new(1, Duration::from_secs(30)));
        let subscriptions = [backlog.subscribe(), backlog.subscribe()];
        let first = backlog.hold();
        let second = backlog.hold();
        assert_eq!(backlog.waiting(), 2);
        let waiter = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.ready().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "must wait while two are unprocessed");
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released once one is processed")
            .expect("task");
        drop(second);
        assert_eq!(backlog.waiting(), 0);
        drop(subscriptions);
        tokio::time::timeout(Duration::from_millis(100), backlog.ready())
            .await
            .expect("no wait when empty");
    }

    #[tokio::test]
    async fn a_busy_consumer_holds_a_request_back_only_for_a_bounded_time() {
        let backlog = Arc::new(NotificationBacklog::new(1, Duration::from_millis(100)));
        let _busy = backlog.hold();
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), backlog.ready())
            .await
            .expect("the hold is bounded");
        assert!(started.elapsed() >= Duration::from_millis(90));
    }

    #[tokio::test]
    async fn past_the_hold_requests_stop_at_the_hard_cap_until_writers_catch_up() {
        let backlog = Arc::new(NotificationBacklog::new(1, Duration::from_millis(20)));
        let _subscription = backlog.subscribe();
        let mut held: Vec<Held> = (0..HARD_LIMIT_FACTOR - 1).map(|_| backlog.hold()).collect();
        // Below the cap a request still goes out after the hold.
        tokio::time::timeout(Duration::from_secs(5), backlog.ready())
            .await
            .expect("below the cap the hold is bounded");
        assert_eq!(backlog.saturations(), 0);
        held.push(backlog.hold());
        let waiter = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.ready().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiter.is_finished(), "at the cap no request goes out");
        assert_eq!(backlog.saturations(), 1);
        assert!(saturations_total() >= 1);
        held.pop();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released once a writer catches up")
            .expect("task");
        assert_eq!(backlog.saturations(), 1, "one wait counts once");
    }
}
