//! Which monitored item feeds which field of the writer, and changes of the node list.
//!
//! Notifications name items by client handle; the writer's fields are in configuration order.
//! A node list change keeps the handle (and so the monitored item) of every node that did not
//! change, so an update in place loses no value.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use super::super::plan::{NodePlan, WriterPlan};
use super::super::subscription::next_handle;
use super::{without_nodes, Writer};

/// Client handle ↔ field index, and the repeat check of one notification.
#[derive(Debug, Default)]
pub struct FieldIndex {
    /// Client handle of each field, in field order (the node plans are in `WriterState`).
    handles: Vec<u32>,
    field_of: HashMap<u32, u32>,
    /// Per field, the run (`stamp`) that last carried it: finds a field repeated within one
    /// notification in O(1).
    seen: Vec<u32>,
    stamp: u32,
}

// The per-value methods are `#[inline]`: they run 10^5–10^6 times a second from another
// module (codegen unit) of the writer task.
impl FieldIndex {
    pub fn handles(&self) -> &[u32] {
        &self.handles
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// The field an item's values go to; `None` for an item no longer of this writer.
    #[inline]
    pub fn field(&self, handle: u32) -> Option<usize> {
        self.field_of.get(&handle).map(|f| *f as usize)
    }

    fn set_handles(&mut self, handles: Vec<u32>) {
        self.field_of = handles
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i as u32))
            .collect();
        self.handles = handles;
    }

    /// Starts the values of a new notification: no field seen yet.
    pub fn start_notification(&mut self) {
        self.seen.resize(self.handles.len(), 0);
        self.next_run();
    }

    /// Whether `field` already has a value in the current run of values.
    #[inline]
    pub fn repeated(&self, field: usize) -> bool {
        self.seen.get(field) == Some(&self.stamp)
    }

    /// Starts a new run within the notification (the previous one was sent).
    #[inline]
    pub fn next_run(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
    }

    /// `field` has a value in the current run.
    #[inline]
    pub fn mark(&mut self, field: usize) {
        if let Some(s) = self.seen.get_mut(field) {
            *s = self.stamp;
        }
    }
}

impl Writer {
    /// Takes a new node list: unchanged nodes keep their handle (and monitored item), the
    /// rest are registered for creation. Answers the handles of the nodes that left, for the
    /// caller to remove.
    pub(super) fn set_nodes(&mut self, plan: &WriterPlan, now: Instant) -> Vec<u32> {
        // Old node → its handle in O(1) (a writer may hold 100k nodes). Field names are
        // unique in a writer, so (node id, name) names one node; it is kept only when its
        // settings did not change either.
        let mut old: HashMap<(&str, &str), (&Arc<NodePlan>, u32)> =
            HashMap::with_capacity(self.fields.len());
        for (node, h) in self.state.nodes().zip(self.fields.handles()) {
            old.insert((&node.node_id, &node.field_name), (node, *h));
        }
        let mut handles = Vec::with_capacity(plan.nodes.len());
        let mut added = Vec::new();
        let mut removed_changed = Vec::new();
        for n in &plan.nodes {
            let kept = old
                .remove(&(&*n.node_id, &*n.field_name))
                .filter(|(o, h)| {
                    let same = **o == *n;
                    if !same {
                        // Re-created below with the new settings.
                        removed_changed.push(*h);
                    }
                    same
                })
                .map(|(_, h)| h);
            match kept {
                Some(h) => handles.push(h),
                None => {
                    let h = next_handle();
                    added.push((h, n.clone()));
                    handles.push(h);
                }
            }
        }
        let mut removed: Vec<u32> = old.into_values().map(|(_, h)| h).collect();
        removed.append(&mut removed_changed);
        for (h, n) in added {
            self.subs.insert(h, n);
        }
        self.fields.set_handles(handles);
        self.state.set_fields(plan, now);
        self.plan = without_nodes(plan);
        self.batcher
            .set_limits(plan.batch_size, plan.batch_trigger_interval);
        removed
    }

    /// An update in place: new nodes are created, gone ones deleted, and metadata follows.
    pub(super) async fn update(&mut self, plan: WriterPlan) {
        let removed = self.set_nodes(&plan, Instant::now());
        info!(writer = %self.plan.id, nodes = self.fields.len(), removed = removed.len(), "writer updated in place");
        if let Some(session) = self.link.live_session() {
            self.subs.remove(&session, &removed).await;
            self.subs.sync(&session, &self.link.ns).await;
            self.send_metadata().await;
        } else {
            // Not on the server yet: forget them locally; the next connect creates the rest.
            self.subs.forget(&removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_map_to_fields_in_order() {
        let mut f = FieldIndex::default();
        f.set_handles(vec![30, 10, 20]);
        assert_eq!(f.field(30), Some(0));
        assert_eq!(f.field(20), Some(2));
        assert_eq!(f.field(99), None);
        f.set_handles(vec![20]);
        assert_eq!(f.field(20), Some(0));
        assert_eq!(f.field(30), None, "a handle that left maps nowhere");
    }

    #[test]
    fn a_field_repeats_only_within_one_run() {
        let mut f = FieldIndex::default();
        f.set_handles(vec![1, 2]);
        f.start_notification();
        assert!(!f.repeated(0));
        f.mark(0);
        assert!(f.repeated(0));
        assert!(!f.repeated(1));
        f.next_run();
        assert!(!f.repeated(0), "a new run starts empty");
        f.mark(1);
        f.start_notification();
        assert!(!f.repeated(1), "a new notification starts empty");
    }

    #[test]
    fn fields_added_later_are_tracked() {
        let mut f = FieldIndex::default();
        f.set_handles(vec![1]);
        f.start_notification();
        f.set_handles(vec![1, 2, 3]);
        f.start_notification();
        f.mark(2);
        assert!(f.repeated(2));
    }
}
