//! What the operator chooses: where the outbox lives, how big it may grow, and what happens
//! when it is full.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Configuration of the outbox; `Default` holds the shipped defaults.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub dir: PathBuf,
    /// Upper bound of the live (unacknowledged) records' bytes.
    pub max_bytes: u64,
    pub overflow: OverflowPolicy,
    /// Minimum time between two fsyncs: the group-commit window under load.
    pub commit_interval: Duration,
    /// A segment file is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/module/outbox"),
            max_bytes: 1 << 30,
            overflow: OverflowPolicy::DropOldest,
            commit_interval: Duration::from_millis(5),
            segment_bytes: 64 << 20,
        }
    }
}

/// What `append` does when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Remove the oldest messages not yet sent (then the oldest in flight), counted in
    /// `outbox_dropped_messages` / `outbox_dropped_bytes`.
    DropOldest,
    /// Refuse the new messages with [`super::OutboxError::Full`]; the caller counts and retries.
    RejectNew,
}

impl FromStr for OverflowPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "drop-oldest" => Ok(Self::DropOldest),
            "reject-new" => Ok(Self::RejectNew),
            _ => Err(format!(
                "unknown overflow policy '{s}' (use drop-oldest or reject-new)"
            )),
        }
    }
}
