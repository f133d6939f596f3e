//! The writer's `ua-metadata`: DataType and ValueRank of its fields, read from the server,
//! sent retained whenever the field list changes or newly monitored fields got their types.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use opcua::types::{AttributeId, NodeId, ReadValueId, TimestampsToReturn, Variant};
use tracing::debug;

use super::super::encoder::{metadata_message, MetadataField};
use super::super::outbox::Message;
use super::super::plan::{MessagingMode, NodePlan};
use super::Writer;
use crate::api::NamespaceFormat;
use crate::opcua::json_value::builtin_of;

/// Attributes read per Read request are twice this.
const NODES_PER_READ: usize = 500;

#[derive(Debug, Default)]
pub struct Metadata {
    /// The metadata version last sent; reset by a connect, so each session sends it again.
    sent: Option<(u32, u32)>,
    /// The distinct (DataType, ValueRank) pairs of the fields; a field holds an index here
    /// (`WriterState::type_index`), since 100k fields share a handful of types.
    types: Vec<(NodeId, i32)>,
}

impl Metadata {
    /// Makes the next `send_metadata` send, whether or not the fields changed.
    pub fn resend(&mut self) {
        self.sent = None;
    }

    /// Index + 1 of the pair in `types` (0 stays "unknown"), added if new; `None` when more
    /// distinct types than a u16 holds (never seen in practice).
    fn type_index(&mut self, data_type: NodeId, value_rank: i32) -> Option<u16> {
        let index = match self
            .types
            .iter()
            .position(|t| t.0 == data_type && t.1 == value_rank)
        {
            Some(i) => i,
            None => {
                self.types.push((data_type, value_rank));
                self.types.len() - 1
            }
        };
        u16::try_from(index + 1).ok()
    }
}

impl Writer {
    /// Sends `ua-metadata` (retained) when the writer's fields changed since the last one.
    pub(super) async fn send_metadata(&mut self) {
        if !self.setup.send_metadata || self.plan.messaging_mode != MessagingMode::PubSub {
            return;
        }
        let version = self.state.metadata_version();
        if self.metadata.sent == Some(version) && self.untyped_good_fields().next().is_none() {
            return;
        }
        self.load_field_types().await;
        let types = &self.metadata.types;
        let state = &self.state;
        let ns = &self.link.ns;
        let fields = state.fields().enumerate().map(|(i, (name, _))| {
            let known = usize::from(state.type_index(i))
                .checked_sub(1)
                .and_then(|t| types.get(t));
            MetadataField {
                name,
                builtin_type: known.and_then(|(dt, _)| builtin_of(dt)).map(|b| b as u32),
                data_type: known.map(|(dt, _)| ns.format(dt, NamespaceFormat::Expanded)),
                value_rank: known.map(|(_, rank)| *rank),
            }
        });
        let payload = metadata_message(
            &self.setup.publisher_id,
            self.ctx.message_ids.fetch_add(1, Ordering::Relaxed),
            self.setup.writer_id,
            &self.plan.id,
            version,
            fields,
        );
        self.append(vec![Message {
            topic: self.setup.metadata_topic.clone(),
            payload: Bytes::from(payload),
            retain: true,
        }])
        .await;
        self.metadata.sent = Some(version);
    }

    /// Fields whose item is on the server but whose type is not known yet.
    fn untyped_good_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.subs
            .good_handles()
            .filter_map(|h| self.fields.field(h))
            .filter(|f| self.state.type_index(*f) == 0)
    }

    /// Reads DataType and ValueRank of the monitored nodes not yet known, in chunks.
    async fn load_field_types(&mut self) {
        let Some(session) = self.link.session() else {
            return;
        };
        let nodes: Vec<&Arc<NodePlan>> = self.state.nodes().collect();
        let todo: Vec<(usize, NodeId)> = self
            .untyped_good_fields()
            .filter_map(|f| {
                let node = nodes.get(f)?;
                self.link.ns.parse(&node.node_id).ok().map(|id| (f, id))
            })
            .collect();
        drop(nodes);
        for chunk in todo.chunks(NODES_PER_READ) {
            let reads: Vec<ReadValueId> = chunk
                .iter()
                .flat_map(|(_, n)| {
                    [AttributeId::DataType, AttributeId::ValueRank].map(|a| ReadValueId {
                        node_id: n.clone(),
                        attribute_id: a as u32,
                        ..Default::default()
                    })
                })
                .collect();
            let Ok(values) = session.read(&reads, TimestampsToReturn::Neither, 0.0).await else {
                debug!("reading field types for metadata failed");
                return;
            };
            for ((field, _), pair) in chunk.iter().zip(values.chunks(2)) {
                let dt = match pair.first().and_then(|v| v.value.as_ref()) {
                    Some(Variant::NodeId(n)) => (**n).clone(),
                    _ => continue,
                };
                let rank = match pair.get(1).and_then(|v| v.value.as_ref()) {
                    Some(Variant::Int32(r)) => *r,
                    _ => -1,
                };
                if let Some(t) = self.metadata.type_index(dt, rank) {
                    self.state.set_type_index(*field, t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_types_share_one_index_and_zero_means_unknown() {
        let mut m = Metadata::default();
        let double = NodeId::new(0, 11u32);
        let int = NodeId::new(0, 6u32);
        assert_eq!(m.type_index(double.clone(), -1), Some(1));
        assert_eq!(m.type_index(int.clone(), -1), Some(2));
        assert_eq!(m.type_index(double.clone(), -1), Some(1));
        // Same type, other rank: another pair.
        assert_eq!(m.type_index(double, 1), Some(3));
        assert_eq!(m.types.len(), 3);
    }
}
