//! The bounded hand-off of module events from the MQTT event loop to the registry task.
//!
//! Whoever can publish on the broker decides how many state and discovery messages arrive, and
//! the registry writes each one to the database, so an unbounded queue would grow with a
//! flood until memory runs out. The queue holds [`CAPACITY`] events; past that an event is
//! dropped and counted rather than waited for, because waiting would stall the event loop and
//! with it every RPC answer and keep-alive. A dropped state message costs little: modules
//! repeat it with every heartbeat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::warn;

use super::ModuleEvent;

/// Events waiting for the registry at most: minutes of heartbeats from thousands of modules.
pub const CAPACITY: usize = 4096;

/// At most one warning about drops per this interval.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The sending side, owned by the MQTT event loop.
pub struct EventSender {
    tx: mpsc::Sender<ModuleEvent>,
    dropped: Arc<AtomicU64>,
    last_warning: Mutex<Option<Instant>>,
}

/// A queue of `capacity` events: the sender, the registry's receiver, and the count of
/// events dropped because the queue was full.
pub fn channel(capacity: usize) -> (EventSender, mpsc::Receiver<ModuleEvent>) {
    let (tx, rx) = mpsc::channel(capacity);
    let sender = EventSender {
        tx,
        dropped: Arc::new(AtomicU64::new(0)),
        last_warning: Mutex::new(None),
    };
    (sender, rx)
}

impl EventSender {
    /// Queues `event` without waiting; a full queue drops it and counts the drop.
    pub fn offer(&self, event: ModuleEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.warn_rate_limited(total);
            }
            // The registry task has stopped: the service is shutting down.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The drop counter, shared with whoever reports it.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    fn warn_rate_limited(&self, total: u64) {
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return;
        }
        *last = Some(now);
        warn!(
            dropped_total = total,
            capacity = self.tx.max_capacity(),
            "module events arrive faster than the registry applies them; dropping"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(i: usize) -> ModuleEvent {
        ModuleEvent::State {
            id: format!("m{i}"),
            root: format!("m{i}"),
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, mut rx) = channel(8);
        let dropped = tx.dropped();
        // No consumer: 8 fit, the other 92 are dropped, and offer never blocks.
        for i in 0..100 {
            tx.offer(state(i));
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 92);
        let mut kept = Vec::new();
        while let Ok(ModuleEvent::State { id, .. }) = rx.try_recv() {
            kept.push(id);
        }
        assert_eq!(kept, (0..8).map(|i| format!("m{i}")).collect::<Vec<_>>());
        // Room again once the registry caught up.
        tx.offer(state(100));
        assert!(matches!(rx.try_recv(), Ok(ModuleEvent::State { id, .. }) if id == "m100"));
        assert_eq!(dropped.load(Ordering::Relaxed), 92);
        // A stopped registry is no drop.
        drop(rx);
        tx.offer(state(101));
        assert_eq!(dropped.load(Ordering::Relaxed), 92);
    }
}
