//! The writer task's intake: a publish response becomes field values, `WriterState` makes a
//! data set message of them, and the batcher takes it.
//!
//! This runs for every value (10^5–10^6 a second), so it allocates once per notification (the
//! values handed to `WriterState`), never per value.

use std::ops::RangeInclusive;
use std::time::Instant;

use opcua::types::{DataChangeNotification, DataValue, DateTime, NotificationMessage, StatusCode};
use tracing::{debug, info, warn};

use super::super::encoder::{DataSetMessage, FieldValue};
use super::super::subscription::SubscriptionEvent;
use super::Writer;
use crate::api::NamespaceFormat;
use crate::opcua::json_value::to_json;
use crate::opcua::node_id::Namespaces;

impl Writer {
    pub(super) async fn on_event(&mut self, event: SubscriptionEvent) {
        // `_held` keeps the response counted in the session's backlog until it is processed.
        let SubscriptionEvent::Notification {
            slot,
            message,
            held: _held,
        } = event;
        let has_data = message
            .notification_data
            .as_ref()
            .is_some_and(|d| !d.is_empty());
        let Some(heard) =
            self.subs
                .record_notification(slot, message.sequence_number, has_data, Instant::now())
        else {
            return;
        };
        if let Some(missing) = heard.missing {
            self.republish(heard.server_id, missing).await;
        }
        if has_data {
            self.on_data(message).await;
        }
    }

    /// Asks the server again for the notifications a gap lost, and takes them in order.
    async fn republish(&mut self, server_id: u32, missing: RangeInclusive<u32>) {
        let Some(session) = self.link.session() else {
            return;
        };
        let count = missing.clone().count();
        let mut recovered = 0u64;
        for seq in missing {
            match session.republish(server_id, seq).await {
                Ok(message) => {
                    recovered += 1;
                    self.on_data(message).await;
                }
                Err(e) => {
                    debug!(seq, error = %e, "Republish failed");
                }
            }
        }
        self.ctx.diag.pipeline.republished.add(recovered);
        if recovered < count as u64 {
            warn!(writer = %self.plan.id, missing = count, recovered,
                  "notifications missing from a subscription could not all be republished");
        } else {
            info!(writer = %self.plan.id, recovered, "missing notifications republished");
        }
    }

    async fn on_data(&mut self, message: NotificationMessage) {
        let timestamp = message.publish_time;
        let now = Instant::now();
        let mut values: Vec<(usize, FieldValue)> = Vec::new();
        let mut received = 0u64;
        self.fields.start_notification();
        for obj in message.notification_data.into_iter().flatten() {
            let Some(change) = obj.into_inner_as::<DataChangeNotification>() else {
                continue;
            };
            let items = change.monitored_items.unwrap_or_default();
            values.reserve(items.len());
            for item in items {
                received += 1;
                let Some(field) = self.fields.field(item.client_handle) else {
                    continue;
                };
                // A field twice in one notification (queue size > 1): send what we have first,
                // so that no value replaces another.
                if self.fields.repeated(field) {
                    let run = std::mem::take(&mut values);
                    self.emit(run, timestamp, now).await;
                    self.fields.next_run();
                }
                self.fields.mark(field);
                values.push((field, field_value(item.value, &self.link.ns)));
            }
        }
        self.ctx.diag.pipeline.notifications_in.add(received);
        self.wdiag.values_in.add(received);
        if !values.is_empty() {
            self.emit(values, timestamp, now).await;
        }
    }

    async fn emit(&mut self, values: Vec<(usize, FieldValue)>, timestamp: DateTime, now: Instant) {
        if let Some(m) = self.state.on_values(values, timestamp, now) {
            self.push(m).await;
        }
    }

    /// Hands a message to the batcher, and flushes when that fills the batch.
    pub(super) async fn push(&mut self, m: DataSetMessage) {
        if self.batcher.push(m, Instant::now()) {
            self.flush().await;
        }
    }
}

fn field_value(dv: DataValue, ns: &Namespaces) -> FieldValue {
    let status = dv.status.unwrap_or(StatusCode::Good);
    FieldValue {
        name: "".into(),
        value: dv
            .value
            .as_ref()
            .map(|v| to_json(v, ns, NamespaceFormat::Expanded)),
        status: status.bits(),
        status_symbol: crate::error::symbol(status),
        source_timestamp: dv.source_timestamp,
        server_timestamp: dv.server_timestamp,
        node_id: "".into(),
    }
}
