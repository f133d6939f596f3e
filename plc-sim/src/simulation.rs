//! Value-update tasks that drive the `Fast/*` and `Slow/*` counters.

use std::{sync::Arc, time::Duration};

use opcua::{
    server::SubscriptionCache,
    types::{DataValue, DateTime, NodeId, StatusCode, Variant},
};
use tokio::{task::JoinHandle, time::MissedTickBehavior};
use tracing::warn;

use crate::node_manager::PlcNodeManager;

/// Spawns a task that, every `period`, sets all `ids` to the same incremented UInt64
/// sequence number (starting from the initial 0) with fresh source and server timestamps,
/// and notifies subscriptions.
///
/// All nodes share one counter and one timestamp so a client can correlate them; a missed
/// tick is skipped rather than bursted, so the counter never jumps by more than one per
/// update.
pub(crate) fn spawn_counter(
    nm: Arc<PlcNodeManager>,
    subscriptions: Arc<SubscriptionCache>,
    ids: Vec<NodeId>,
    period: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // The first tick completes immediately; the value must stay 0 for one period.
        ticker.tick().await;
        let mut sequence = 0u64;
        loop {
            ticker.tick().await;
            sequence = sequence.wrapping_add(1);
            let now = DateTime::now();
            let value = DataValue {
                value: Some(Variant::UInt64(sequence)),
                status: Some(StatusCode::Good),
                source_timestamp: Some(now),
                server_timestamp: Some(now),
                ..Default::default()
            };
            if let Err(e) = nm.set_values(
                &subscriptions,
                ids.iter().map(|id| (id, None, value.clone())),
            ) {
                warn!("plc-sim counter update failed: {e}");
            }
        }
    })
}
