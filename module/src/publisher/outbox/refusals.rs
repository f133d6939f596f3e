//! Refused messages: counted per reason for `/metrics`, and logged at most once per
//! [`LOG_INTERVAL`] per reason. A disk failure is one of the reasons: a full disk fails every
//! batch until it frees up, exactly the flood this guards against.
//!
//! A full outbox under `reject-new` refuses every batch of every writer until the broker is
//! back; a warning per batch would bury the log (and cost the writers time) while the count
//! that matters went unreported. The counters carry the full count; the warning says how many
//! refusals it stands for.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::publisher::metrics::PipelineMetrics;

/// Least time between two warnings of one reason.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why the outbox refused messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Full under the `reject-new` overflow policy.
    Full,
    /// A batch larger than the outbox (or a record) can ever hold.
    TooLarge,
    /// Accepted, but a disk operation failed before the messages were durable.
    Disk,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Full => "full",
            Reason::TooLarge => "too_large",
            Reason::Disk => "disk_error",
        }
    }
}

/// What a warning of one reason stands for beyond its own refusal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Suppressed {
    pub refusals: u64,
    pub messages: u64,
}

/// The log window of one reason.
#[derive(Debug, Default)]
struct Window {
    last_logged: Option<Instant>,
    suppressed: Suppressed,
}

impl Window {
    /// Whether a refusal of `messages` at `now` is logged, and with what was suppressed
    /// since the last warning; otherwise it is added to the suppressed count.
    fn admit(&mut self, now: Instant, messages: u64) -> Option<Suppressed> {
        let due = self
            .last_logged
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_INTERVAL);
        if due {
            self.last_logged = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed.refusals += 1;
            self.suppressed.messages += messages;
            None
        }
    }
}

/// The outbox's record of refusals.
#[derive(Debug, Default)]
pub struct Refusals {
    windows: Mutex<[Window; 3]>,
}

impl Refusals {
    /// Counts a refused batch of `messages` and logs it unless one of the same reason was
    /// logged within [`LOG_INTERVAL`].
    pub fn record(
        &self,
        metrics: &PipelineMetrics,
        reason: Reason,
        messages: u64,
        error: &dyn std::fmt::Display,
    ) {
        match reason {
            Reason::Full => metrics.outbox_rejected_full.add(messages),
            Reason::TooLarge => metrics.outbox_rejected_too_large.add(messages),
            Reason::Disk => metrics.outbox_rejected_disk_error.add(messages),
        }
        let logged = {
            let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            w[reason as usize].admit(Instant::now(), messages)
        };
        if let Some(s) = logged {
            warn!(
                reason = reason.as_str(),
                messages,
                suppressed_refusals = s.refusals,
                suppressed_messages = s.messages,
                error = %error,
                "outbox refused messages; they are not delivered (more refusals of this kind are logged at most every 10 s)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DiskOp, OutboxError};
    use super::*;

    #[test]
    fn one_warning_per_interval_carries_the_suppressed_count() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.admit(t0, 3), Some(Suppressed::default()));
        assert_eq!(w.admit(t0 + Duration::from_secs(1), 2), None);
        assert_eq!(w.admit(t0 + Duration::from_secs(9), 4), None);
        assert_eq!(
            w.admit(t0 + LOG_INTERVAL, 1),
            Some(Suppressed {
                refusals: 2,
                messages: 6
            })
        );
        assert_eq!(w.admit(t0 + LOG_INTERVAL + Duration::from_secs(1), 1), None);
        assert_eq!(
            w.admit(t0 + 3 * LOG_INTERVAL, 1),
            Some(Suppressed {
                refusals: 1,
                messages: 1
            })
        );
    }

    #[test]
    fn reasons_have_windows_and_counters_of_their_own() {
        let metrics = PipelineMetrics::default();
        let refusals = Refusals::default();
        let full = OutboxError::Full {
            needed: 10,
            max_bytes: 5,
        };
        let large = OutboxError::TooLarge { size: 10, limit: 5 };
        refusals.record(&metrics, Reason::Full, 4, &full);
        refusals.record(&metrics, Reason::Full, 2, &full);
        refusals.record(&metrics, Reason::TooLarge, 1, &large);
        let disk = OutboxError::Disk {
            op: DiskOp::Write,
            kind: std::io::ErrorKind::StorageFull,
            path: "seg".into(),
        };
        for _ in 0..3 {
            refusals.record(&metrics, Reason::Disk, 5, &disk);
        }
        assert_eq!(metrics.outbox_rejected_full.get(), 6);
        assert_eq!(metrics.outbox_rejected_too_large.get(), 1);
        assert_eq!(metrics.outbox_rejected_disk_error.get(), 15);
        let w = refusals.windows.lock().unwrap();
        assert_eq!(w[Reason::Full as usize].suppressed.refusals, 1);
        assert_eq!(w[Reason::TooLarge as usize].suppressed.refusals, 0);
        assert!(w[Reason::TooLarge as usize].last_logged.is_some());
        assert_eq!(
            w[Reason::Disk as usize].suppressed,
            Suppressed {
                refusals: 2,
                messages: 10
            },
            "a full disk failing every batch is logged once per window"
        );
    }
}
