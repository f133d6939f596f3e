//! Batching of one writer's data set messages: a batch is due when it holds `BatchSize`
//! values, or `BatchTriggerInterval` after its first message, whichever comes first.
//!
//! Pure (no I/O, no clock of its own), so the writer task decides only when to look and what
//! to do with a due batch.

use std::time::{Duration, Instant};

use super::super::encoder::DataSetMessage;

#[derive(Debug)]
pub struct Batcher {
    messages: Vec<DataSetMessage>,
    /// Values in `messages`; a message without fields (a keep-alive) counts as one.
    values: usize,
    /// When the first message of the batch came.
    started: Option<Instant>,
    max_values: usize,
    interval: Duration,
}

impl Batcher {
    /// A batch size of 0 is taken as 1.
    pub fn new(batch_size: u32, interval: Duration) -> Self {
        let mut b = Self {
            messages: Vec::new(),
            values: 0,
            started: None,
            max_values: 1,
            interval,
        };
        b.set_limits(batch_size, interval);
        b
    }

    /// New limits from a changed plan; they apply from the next `push` (size) and the next
    /// look at `due_at` (time), to the batch already held too.
    pub fn set_limits(&mut self, batch_size: u32, interval: Duration) {
        self.max_values = batch_size.max(1) as usize;
        self.interval = interval;
    }

    /// Adds a message that came at `now`. Answers whether the batch is now full.
    pub fn push(&mut self, message: DataSetMessage, now: Instant) -> bool {
        self.values += message.fields.len().max(1);
        self.started.get_or_insert(now);
        self.messages.push(message);
        self.values >= self.max_values
    }

    /// When the batch held is due by time; `None` while it is empty.
    pub fn due_at(&self) -> Option<Instant> {
        self.started.map(|t| t + self.interval)
    }

    /// Whether the batch held is due by time at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.due_at().is_some_and(|t| now >= t)
    }

    /// Hands out the batch and starts a new one; `None` when there is nothing to send.
    pub fn take(&mut self) -> Option<Vec<DataSetMessage>> {
        self.values = 0;
        self.started = None;
        let messages = std::mem::take(&mut self.messages);
        (!messages.is_empty()).then_some(messages)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opcua::types::DateTime;

    use super::*;
    use crate::publisher::encoder::{FieldValue, FrameKind};

    fn message(values: usize) -> DataSetMessage {
        let field = FieldValue {
            name: "f".into(),
            value: Some(serde_json::json!(1)),
            status: 0,
            status_symbol: "Good",
            source_timestamp: None,
            server_timestamp: None,
            node_id: "ns=1;s=f".into(),
        };
        DataSetMessage {
            writer_id: 1,
            writer_name: Arc::from("w"),
            sequence_number: 1,
            kind: if values == 0 {
                FrameKind::KeepAlive
            } else {
                FrameKind::DeltaFrame
            },
            timestamp: DateTime::now(),
            metadata_version: (1, 0),
            fields: vec![field; values],
            endpoint_url: "opc.tcp://plc".into(),
            application_uri: "urn:plc".into(),
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn full_by_value_count_not_message_count() {
        let t0 = Instant::now();
        let mut b = Batcher::new(10, SECOND);
        assert!(!b.push(message(4), t0));
        assert!(!b.push(message(5), t0));
        assert!(b.push(message(1), t0), "10 values fill a batch of 10");
        let batch = b.take().unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.iter().map(|m| m.fields.len()).sum::<usize>(), 10);
    }

    #[test]
    fn one_large_message_fills_the_batch_alone() {
        let mut b = Batcher::new(10, SECOND);
        assert!(b.push(message(25), Instant::now()));
    }

    #[test]
    fn a_keep_alive_counts_as_one_value() {
        let t0 = Instant::now();
        let mut b = Batcher::new(2, SECOND);
        assert!(!b.push(message(0), t0));
        assert!(b.push(message(0), t0));
    }

    #[test]
    fn batch_size_zero_sends_each_message() {
        let mut b = Batcher::new(0, SECOND);
        assert!(b.push(message(1), Instant::now()));
    }

    #[test]
    fn due_by_time_since_the_first_message() {
        let t0 = Instant::now();
        let mut b = Batcher::new(1000, SECOND);
        b.push(message(1), t0);
        // Later messages do not move the deadline.
        b.push(message(1), t0 + SECOND / 2);
        assert_eq!(b.due_at(), Some(t0 + SECOND));
        assert!(!b.is_due(t0 + SECOND - Duration::from_millis(1)));
        assert!(b.is_due(t0 + SECOND));
        assert_eq!(b.take().map(|m| m.len()), Some(2));
    }

    #[test]
    fn an_empty_batch_is_never_due() {
        let t0 = Instant::now();
        let mut b = Batcher::new(1, Duration::ZERO);
        assert_eq!(b.due_at(), None);
        assert!(!b.is_due(t0 + 3600 * SECOND));
        assert!(b.take().is_none());
    }

    #[test]
    fn taking_starts_a_new_batch() {
        let t0 = Instant::now();
        let mut b = Batcher::new(3, SECOND);
        b.push(message(2), t0);
        assert!(b.take().is_some());
        assert_eq!(b.due_at(), None, "the time of the old batch is gone");
        assert!(b.take().is_none(), "nothing is handed out twice");
        // The count starts over as well: 2 values do not fill a batch of 3.
        let t1 = t0 + 5 * SECOND;
        assert!(!b.push(message(2), t1));
        assert_eq!(b.due_at(), Some(t1 + SECOND));
    }

    #[test]
    fn new_limits_apply_to_the_batch_held() {
        let t0 = Instant::now();
        let mut b = Batcher::new(100, 10 * SECOND);
        b.push(message(5), t0);
        b.set_limits(6, SECOND);
        assert_eq!(b.due_at(), Some(t0 + SECOND));
        assert!(b.push(message(1), t0));
    }
}
