//! The writer task's output: a due batch is encoded (`encoder::encode_split`, at most
//! `--ms` bytes a message) and queued to the outbox, without waiting for the disk unless too
//! many commits are still pending.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tracing::{debug, warn};

use super::super::encoder::{encode_split, network_message, samples_message};
use super::super::outbox::{Commit, Message, OutboxError};
use super::super::plan::MessagingMode;
use super::Writer;

/// Appends a writer may have on their way to disk before it waits for the oldest. The outbox
/// writes an append to the page cache at once and only its fsync is pending, so waiting
/// commits cost no memory; the bound only matters when the disk stalls. A writer may take
/// all of a burst (the server answers Publish for one subscription until it runs dry), and
/// with 2 it was capped near 250k values/s by the 5 ms commit window.
const MAX_PENDING_COMMITS: usize = 8;

/// Appends not yet known to be durable, oldest first.
#[derive(Default)]
pub struct PendingCommits(VecDeque<Commit>);

impl Writer {
    /// Encodes and queues the batch, if there is one.
    pub(super) async fn flush(&mut self) {
        let Some(messages) = self.batcher.take() else {
            return;
        };
        let values: usize = messages.iter().map(|m| m.fields.len()).sum();
        let publisher_id = self.setup.publisher_id.clone();
        let ids = self.ctx.message_ids.clone();
        let encoded = match self.plan.messaging_mode {
            MessagingMode::PubSub => encode_split(&messages, self.setup.max_message_size, &|m| {
                network_message(&publisher_id, ids.fetch_add(1, Ordering::Relaxed), m)
            }),
            MessagingMode::Samples => encode_split(&messages, self.setup.max_message_size, &|m| {
                samples_message(&publisher_id, m)
            }),
        };
        let pipeline = &self.ctx.diag.pipeline;
        pipeline.values_encoded.add(values as u64);
        pipeline.messages_encoded.add(encoded.len() as u64);
        self.wdiag.messages_out.add(encoded.len() as u64);
        let out: Vec<Message> = encoded
            .into_iter()
            .map(|payload| Message {
                topic: self.setup.telemetry_topic.clone(),
                payload: Bytes::from(payload),
                retain: false,
            })
            .collect();
        self.append(out).await;
    }

    /// Hands messages to the outbox and goes on without waiting for the disk; only when
    /// `MAX_PENDING_COMMITS` appends are still on their way does it wait for the oldest,
    /// the pipeline's back-pressure when the disk stalls. Waiting on every append instead
    /// left the writer idle for each fsync while its subscription's notifications piled up.
    pub(super) async fn append(&mut self, messages: Vec<Message>) {
        match self.ctx.outbox.enqueue(messages) {
            Ok(commit) => self.commits.0.push_back(commit),
            Err(e) => self.refused(&e),
        }
        self.settle(MAX_PENDING_COMMITS).await;
    }

    fn refused(&self, e: &OutboxError) {
        match e {
            // Counted, and logged rate-limited, by the outbox itself.
            OutboxError::Full { .. } | OutboxError::TooLarge { .. } | OutboxError::Disk { .. } => {
                debug!(writer = %self.plan.id, error = %e, "outbox refused messages")
            }
            e => warn!(writer = %self.plan.id, error = %e, "outbox refused messages"),
        }
    }

    /// Waits for the oldest commits until at most `keep` are pending, and takes the ones
    /// already durable: a failure is reported when it is known, not at the next append.
    pub(super) async fn settle(&mut self, keep: usize) {
        while self.commits.0.len() > keep || self.commits.0.front().is_some_and(Commit::is_done) {
            let Some(commit) = self.commits.0.pop_front() else {
                break;
            };
            if let Err(e) = commit.durable().await {
                self.refused(&e);
            }
        }
    }
}
