//! One data set writer's message logic: sequence numbers, key and delta frames, SkipFirst,
//! heartbeats with the last known value, keep-alives.
//!
//! It is a state machine fed with notifications and clock ticks (time is passed in), so the
//! OPC Publisher semantics are tested without a server and the subscription engine only has
//! to route notifications to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opcua::types::DateTime;

use super::encoder::{DataSetMessage, FieldValue, FrameKind};
use super::plan::{NodePlan, WriterPlan};

/// How heartbeats are produced (OPC Publisher's `HeartbeatBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeartbeatBehavior {
    /// Resend the last known value when nothing arrived for the interval.
    #[default]
    WatchdogLkv,
    /// Resend the last known value every interval, whether or not it changed.
    PeriodicLkv,
}

/// One field of the data set. A writer may have 100k of them, so a field is its shared node
/// plan plus what is needed on every value; the heartbeat's timers live with the last value,
/// which only fields with a heartbeat or a key frame keep.
#[derive(Debug, Clone)]
struct Field {
    node: Arc<NodePlan>,
    last: Option<Box<LastValue>>,
    /// `WriterState::stamp` of the last `on_values` call that carried this field.
    seen: u32,
    /// When the field joined the writer, in ms after `WriterState::epoch` (saturating): the
    /// periodic heartbeat counts from there.
    joined_ms: u32,
    /// DataType and ValueRank for the metadata message: 1 + an index into the writer
    /// task's table of distinct types, 0 while unknown. Fits in the struct's padding.
    type_index: u16,
    skip_first: bool,
}

#[derive(Debug, Clone)]
struct LastValue {
    value: FieldValue,
    /// Last value or heartbeat sent: the watchdog's reference.
    last_activity: Instant,
    /// Last heartbeat sent: the periodic behaviour's reference.
    last_beat: Instant,
}

impl Field {
    fn new(node: &Arc<NodePlan>, joined_ms: u32) -> Self {
        Self {
            node: node.clone(),
            last: None,
            seen: 0,
            joined_ms,
            type_index: 0,
            skip_first: node.settings.skip_first,
        }
    }

    fn heartbeat(&self) -> Option<Duration> {
        self.node.settings.heartbeat
    }
}

/// The state of one writer.
#[derive(Debug, Clone)]
pub struct WriterState {
    pub writer_id: u16,
    pub name: Arc<str>,
    key_frame_count: Option<u32>,
    behavior: HeartbeatBehavior,
    fields: Vec<Field>,
    sequence: u32,
    since_key_frame: u32,
    endpoint_url: Arc<str>,
    application_uri: Arc<str>,
    metadata_version: (u32, u32),
    /// Counts `on_values` calls, to find a field repeated within one call in O(1).
    stamp: u32,
    /// Reference of the fields' `joined_ms`.
    epoch: Instant,
}

impl WriterState {
    pub fn new(writer_id: u16, plan: &WriterPlan, now: Instant) -> Self {
        Self {
            writer_id,
            name: plan.id.as_str().into(),
            key_frame_count: plan.key_frame_count.filter(|n| *n > 0),
            behavior: HeartbeatBehavior::default(),
            fields: plan.nodes.iter().map(|n| Field::new(n, 0)).collect(),
            sequence: 0,
            since_key_frame: 0,
            endpoint_url: plan.connection.endpoint.url.as_str().into(),
            application_uri: "".into(),
            metadata_version: (1, 0),
            stamp: 0,
            epoch: now,
        }
    }

    fn ms_since_epoch(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u32::MAX)
    }

    pub fn with_behavior(mut self, behavior: HeartbeatBehavior) -> Self {
        self.behavior = behavior;
        self
    }

    pub fn set_application_uri(&mut self, uri: String) {
        self.application_uri = uri.into();
    }

    /// The writer's data set changed at runtime: fields follow the new plan's node order,
    /// fields that stay keep their last value and timers (no gap, no second SkipFirst), and the
    /// metadata major version moves so consumers know the field list changed. Sequence numbers
    /// continue.
    pub fn set_fields(&mut self, plan: &WriterPlan, now: Instant) {
        let joined_ms = self.ms_since_epoch(now);
        let mut old: Vec<Option<Field>> = self.fields.drain(..).map(Some).collect();
        // Field names are unique in a writer, so (node id, name) finds a field in O(1).
        let index: std::collections::HashMap<(Arc<str>, Arc<str>), usize> = old
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                f.as_ref()
                    .map(|f| ((f.node.node_id.clone(), f.node.field_name.clone()), i))
            })
            .collect();
        let mut changed = old.len() != plan.nodes.len();
        self.fields = plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let kept = index
                    .get(&(n.node_id.clone(), n.field_name.clone()))
                    .and_then(|&k| {
                        changed |= k != i;
                        old[k].take()
                    });
                match kept {
                    Some(mut f) => {
                        // New settings (heartbeat) apply; SkipFirst does not apply twice.
                        let skip_first = f.skip_first && n.settings.skip_first;
                        f.node = n.clone();
                        f.skip_first = skip_first;
                        f
                    }
                    None => {
                        changed = true;
                        Field::new(n, joined_ms)
                    }
                }
            })
            .collect();
        self.key_frame_count = plan.key_frame_count.filter(|n| *n > 0);
        if changed {
            self.metadata_version = (self.metadata_version.0.wrapping_add(1), 0);
            // The next message is a key frame, so consumers can rebuild the whole data set.
            self.since_key_frame = 0;
        }
    }

    pub fn metadata_version(&self) -> (u32, u32) {
        self.metadata_version
    }

    /// Field names and node ids in data set order, for the metadata message.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|f| (&*f.node.field_name, &*f.node.node_id))
    }

    /// The metadata type of the field at `index` (see `Field::type_index`).
    pub fn type_index(&self, index: usize) -> u16 {
        self.fields.get(index).map_or(0, |f| f.type_index)
    }

    pub fn set_type_index(&mut self, index: usize, type_index: u16) {
        if let Some(f) = self.fields.get_mut(index) {
            f.type_index = type_index;
        }
    }

    /// The node plans in data set order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &Arc<NodePlan>> {
        self.fields.iter().map(|f| &f.node)
    }

    /// Sequence number of the next message; continues across reconnects.
    pub fn next_sequence(&self) -> u32 {
        self.sequence.wrapping_add(1)
    }

    /// Values that arrived from the subscription (field index, value). Returns the message
    /// to send, if any. A field given twice keeps its later value (callers that must not lose
    /// the earlier one split their values first).
    pub fn on_values(
        &mut self,
        values: Vec<(usize, FieldValue)>,
        timestamp: DateTime,
        now: Instant,
    ) -> Option<DataSetMessage> {
        self.stamp = self.stamp.wrapping_add(1);
        let stamp = self.stamp;
        let keep_last = self.key_frame_count.is_some();
        let mut changed: Vec<FieldValue> = Vec::with_capacity(values.len());
        for (index, mut value) in values {
            let Some(field) = self.fields.get_mut(index) else {
                continue;
            };
            value.name = field.node.field_name.clone();
            value.node_id = field.node.node_id.clone();
            if keep_last || field.heartbeat().is_some() {
                match &mut field.last {
                    Some(last) => {
                        last.value.clone_from(&value);
                        last.last_activity = now;
                    }
                    None => {
                        let joined = self.epoch + Duration::from_millis(u64::from(field.joined_ms));
                        field.last = Some(Box::new(LastValue {
                            value: value.clone(),
                            last_activity: now,
                            last_beat: joined,
                        }))
                    }
                }
            }
            if field.skip_first {
                // The server always sends the current value first; SkipFirst drops that one.
                field.skip_first = false;
                continue;
            }
            if field.seen == stamp {
                if let Some(c) = changed
                    .iter_mut()
                    .find(|c| Arc::ptr_eq(&c.name, &value.name))
                {
                    *c = value;
                    continue;
                }
            }
            field.seen = stamp;
            changed.push(value);
        }
        if changed.is_empty() {
            return None;
        }
        Some(self.frame(changed, timestamp))
    }

    /// Heartbeats due at `now`: the last known value of every field whose interval passed.
    pub fn on_tick(&mut self, timestamp: DateTime, now: Instant) -> Option<DataSetMessage> {
        let behavior = self.behavior;
        let mut due = Vec::new();
        for field in &mut self.fields {
            let (Some(interval), Some(last)) = (field.node.settings.heartbeat, &mut field.last)
            else {
                continue;
            };
            let reference = match behavior {
                HeartbeatBehavior::WatchdogLkv => last.last_activity,
                HeartbeatBehavior::PeriodicLkv => last.last_beat,
            };
            if now.duration_since(reference) >= interval {
                due.push(last.value.clone());
                last.last_activity = now;
                last.last_beat = now;
            }
        }
        if due.is_empty() {
            return None;
        }
        Some(self.frame(due, timestamp))
    }

    /// When the next heartbeat may be due, so the engine can sleep until then.
    pub fn next_heartbeat(&self) -> Option<Instant> {
        self.fields
            .iter()
            .filter_map(|f| {
                let last = f.last.as_ref()?;
                let reference = match self.behavior {
                    HeartbeatBehavior::WatchdogLkv => last.last_activity,
                    HeartbeatBehavior::PeriodicLkv => last.last_beat,
                };
                f.heartbeat().map(|h| reference + h)
            })
            .min()
    }

    /// A keep-alive message (subscription keep-alive with no data).
    pub fn keep_alive(&mut self, timestamp: DateTime) -> DataSetMessage {
        self.sequence = self.sequence.wrapping_add(1);
        self.message(FrameKind::KeepAlive, Vec::new(), timestamp)
    }

    fn frame(&mut self, changed: Vec<FieldValue>, timestamp: DateTime) -> DataSetMessage {
        self.sequence = self.sequence.wrapping_add(1);
        let key = match self.key_frame_count {
            Some(n) => {
                let key = self.since_key_frame == 0;
                self.since_key_frame = (self.since_key_frame + 1) % n;
                key
            }
            None => false,
        };
        if key {
            let all = self
                .fields
                .iter()
                .filter_map(|f| f.last.as_ref().map(|l| l.value.clone()))
                .collect();
            self.message(FrameKind::KeyFrame, all, timestamp)
        } else {
            self.message(FrameKind::DeltaFrame, changed, timestamp)
        }
    }

    fn message(
        &self,
        kind: FrameKind,
        fields: Vec<FieldValue>,
        timestamp: DateTime,
    ) -> DataSetMessage {
        DataSetMessage {
            writer_id: self.writer_id,
            writer_name: self.name.clone(),
            sequence_number: self.sequence,
            kind,
            timestamp,
            metadata_version: self.metadata_version,
            fields,
            endpoint_url: self.endpoint_url.clone(),
            application_uri: self.application_uri.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_published_nodes;
    use crate::publisher::plan::plan;
    use serde_json::json;

    fn writer(extra_entry: &str, nodes: &str, now: Instant) -> WriterState {
        let text = format!(
            r#"[{{ "EndpointUrl": "opc.tcp://plc:1", "DataSetWriterId": "w" {extra_entry}, "OpcNodes": [{nodes}] }}]"#
        );
        let plans = plan(&parse_published_nodes(&text).unwrap()).unwrap();
        WriterState::new(1, &plans[0], now)
    }

    fn v(n: i64) -> FieldValue {
        FieldValue {
            name: "".into(),
            value: Some(json!(n)),
            status: 0,
            status_symbol: "Good",
            source_timestamp: None,
            server_timestamp: None,
            node_id: "".into(),
        }
    }

    #[test]
    fn changing_fields_keeps_sequence_and_last_values() {
        let t0 = Instant::now();
        let mut w = writer("", r#"{ "Id": "i=1" }, { "Id": "i=2" }"#, t0);
        w.on_values(vec![(0, v(1)), (1, v(2))], DateTime::now(), t0)
            .unwrap();
        let text = r#"[{ "EndpointUrl": "opc.tcp://plc:1", "DataSetWriterId": "w", "OpcNodes": [{ "Id": "i=2" }, { "Id": "i=3" }] }]"#;
        let plans = plan(&parse_published_nodes(text).unwrap()).unwrap();
        w.set_fields(&plans[0], t0);
        assert_eq!(w.metadata_version(), (2, 0));
        let names: Vec<_> = w.fields().map(|(_, id)| id.to_string()).collect();
        assert_eq!(names, ["i=2", "i=3"]);
        let m = w.on_values(vec![(1, v(3))], DateTime::now(), t0).unwrap();
        assert_eq!(m.sequence_number, 2);
        // i=2 kept its last value across the change.
        assert_eq!(m.fields.len(), 1);
        w.set_fields(&plans[0], t0);
        assert_eq!(
            w.metadata_version(),
            (2, 0),
            "an unchanged plan keeps the version"
        );
    }

    #[test]
    fn sequence_numbers_and_skip_first() {
        let t0 = Instant::now();
        let mut w = writer(
            "",
            r#"{ "Id": "i=1", "SkipFirst": true }, { "Id": "i=2", "DisplayName": "two" }"#,
            t0,
        );
        let m = w
            .on_values(vec![(0, v(1)), (1, v(2))], DateTime::now(), t0)
            .unwrap();
        assert_eq!(m.sequence_number, 1);
        assert_eq!(
            m.fields.len(),
            1,
            "the first value of a SkipFirst node is dropped"
        );
        assert_eq!(&*m.fields[0].name, "two");
        assert_eq!(m.kind, FrameKind::DeltaFrame);
        let m = w.on_values(vec![(0, v(3))], DateTime::now(), t0).unwrap();
        assert_eq!((m.sequence_number, &*m.fields[0].name), (2, "i=1"));
        assert!(
            w.on_values(vec![(7, v(1))], DateTime::now(), t0).is_none(),
            "unknown field ignored"
        );
        assert_eq!(w.keep_alive(DateTime::now()).sequence_number, 3);
    }

    #[test]
    fn key_frames_carry_every_field() {
        let t0 = Instant::now();
        let mut w = writer(
            r#", "DataSetKeyFrameCount": 3"#,
            r#"{ "Id": "i=1" }, { "Id": "i=2" }"#,
            t0,
        );
        let kinds: Vec<_> = (0..6)
            .map(|i| {
                let m = w
                    .on_values(vec![(i % 2, v(i as i64))], DateTime::now(), t0)
                    .unwrap();
                (m.kind, m.fields.len())
            })
            .collect();
        assert_eq!(
            kinds[0],
            (FrameKind::KeyFrame, 1),
            "only one value known yet"
        );
        assert_eq!(kinds[1], (FrameKind::DeltaFrame, 1));
        assert_eq!(kinds[3], (FrameKind::KeyFrame, 2));
    }

    #[test]
    fn heartbeat_resends_the_last_known_value_when_quiet() {
        let t0 = Instant::now();
        let mut w = writer("", r#"{ "Id": "i=1", "HeartbeatInterval": 2 }"#, t0);
        assert!(
            w.on_tick(DateTime::now(), t0 + Duration::from_secs(5))
                .is_none(),
            "nothing known yet"
        );
        w.on_values(vec![(0, v(42))], DateTime::now(), t0).unwrap();
        assert_eq!(w.next_heartbeat(), Some(t0 + Duration::from_secs(2)));
        assert!(w
            .on_tick(DateTime::now(), t0 + Duration::from_secs(1))
            .is_none());
        let hb = w
            .on_tick(DateTime::now(), t0 + Duration::from_secs(2))
            .unwrap();
        assert_eq!(hb.fields[0].value, Some(json!(42)));
        assert_eq!(hb.sequence_number, 2);
        // A fresh value restarts the watchdog.
        w.on_values(
            vec![(0, v(43))],
            DateTime::now(),
            t0 + Duration::from_secs(3),
        )
        .unwrap();
        assert!(w
            .on_tick(DateTime::now(), t0 + Duration::from_secs(4))
            .is_none());
    }

    #[test]
    fn periodic_heartbeat_ignores_fresh_values() {
        let t0 = Instant::now();
        let mut w = writer("", r#"{ "Id": "i=1", "HeartbeatInterval": 2 }"#, t0)
            .with_behavior(HeartbeatBehavior::PeriodicLkv);
        w.on_values(
            vec![(0, v(1))],
            DateTime::now(),
            t0 + Duration::from_secs(1),
        )
        .unwrap();
        let hb = w
            .on_tick(DateTime::now(), t0 + Duration::from_secs(2))
            .unwrap();
        assert_eq!(hb.fields[0].value, Some(json!(1)));
    }
}
