//! Group commit: one writer task per [`Store`](super::Store) that runs the request state changes
//! of concurrent callers in one transaction and commits them together.
//!
//! Why: every state change must be durable before its caller hears about it (a CA must never
//! lose the record of a certificate it issued), so each commit waits for an fsync. SQLite has a
//! single writer and one fsync per commit, so concurrent requests used to queue for the write
//! lock and pay one fsync each. Here the writer takes everything waiting (up to
//! [`MAX_BATCH`]), runs it in one transaction, commits once and only then answers every
//! caller: the fsync is shared, durability is not weakened.
//!
//! Each operation keeps its own outcome. It runs inside its own SAVEPOINT when it shares the
//! transaction, so an operation that fails (a conditional UPDATE that matches no row, a
//! constraint violation) is rolled back alone and fails only its own caller. Audit lines are
//! written by the operation itself, inside its savepoint, so a state change and its audit line
//! still commit together or not at all.
//!
//! There is no waiting for a batch to fill: the writer starts as soon as one operation is
//! queued, and whatever arrives during that commit forms the next batch. A lone caller pays
//! exactly what it paid before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::requests::{Issued, NewRequest};
use super::Store;
use crate::error::{Result, VaultError};

/// Most operations committed together. Bounds the time the first caller of a batch waits and
/// the size of one transaction.
pub const MAX_BATCH: usize = 64;

/// Operations queued beyond the running batch before callers wait to enqueue.
const QUEUE: usize = 1024;

/// An audit line owned by a queued operation (the caller's borrowed [`super::AuditLine`]
/// cannot cross into the writer task).
#[derive(Debug, Clone)]
pub(crate) struct AuditRecord {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

impl From<&super::AuditLine<'_>> for AuditRecord {
    fn from(l: &super::AuditLine<'_>) -> Self {
        AuditRecord {
            actor: l.actor.to_string(),
            action: l.action.to_string(),
            target: l.target.to_string(),
            detail: l.detail.clone(),
        }
    }
}

/// The approval part of a submission under the auto-approve policy.
#[derive(Debug, Clone)]
pub(crate) struct ApprovalRecord {
    pub by: String,
    pub at: i64,
    pub issued: Issued,
    pub audit: AuditRecord,
}

/// A state change of a request with its audit line. Each answers `true` when it was applied,
/// `false` when its condition (the expected current state) did not hold and nothing was written.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    /// INSERT (New) + audit; with an approval also New → Approved + its audit, atomically (an
    /// approval that does not apply fails the whole submission with `InvalidState`).
    Submit {
        row: Box<NewRequest>,
        submitted: AuditRecord,
        approval: Option<Box<ApprovalRecord>>,
    },
    /// New → Approved with the issued certificate.
    Approve {
        id: String,
        by: String,
        at: i64,
        issued: Issued,
        audit: AuditRecord,
    },
    /// New → Rejected.
    Reject {
        id: String,
        by: String,
        at: i64,
        audit: AuditRecord,
    },
    /// Approved → Accepted.
    Accept {
        id: String,
        by: String,
        at: i64,
        audit: AuditRecord,
    },
    /// Approved | Accepted → Revoked.
    Revoke {
        id: String,
        by: String,
        at: i64,
        audit: AuditRecord,
    },
    /// Clears the sealed private key if it is still the one handed out.
    TakeKey {
        id: String,
        sealed: Vec<u8>,
        audit: AuditRecord,
    },
}

/// What the writer has done since the store was opened: how well commits are shared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions committed (each one synced write).
    pub commits: u64,
    /// Operations that applied in those commits.
    pub applied: u64,
    /// Operations answered in all (applied, refused by their condition, or failed).
    pub answered: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    applied: AtomicU64,
    answered: AtomicU64,
}

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<bool>>,
}

/// The queue into a store's writer task. Cloned with the store; the task ends when the last
/// clone is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub fn spawn(pool: AnyPool) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(pool, jobs, counters.clone()));
        Writer { queue, counters }
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            applied: self.counters.applied.load(Ordering::Relaxed),
            answered: self.counters.answered.load(Ordering::Relaxed),
        }
    }

    /// Queues `op` and answers once the transaction holding it has committed (or failed).
    pub async fn submit(&self, op: WriteOp) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { op, reply })
            .await
            .map_err(|_| VaultError::Commit("the store's writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| VaultError::Commit("the store's writer stopped before answering".into()))?
    }
}

async fn run(pool: AnyPool, mut jobs: mpsc::Receiver<Job>, counters: Arc<Counters>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let n = batch.len();
        let started = std::time::Instant::now();
        commit_batch(&pool, std::mem::take(&mut batch), &counters).await;
        counters.answered.fetch_add(n as u64, Ordering::Relaxed);
        tracing::trace!(
            ops = n,
            micros = started.elapsed().as_micros() as u64,
            "group commit"
        );
    }
    tracing::debug!("store writer stopped: no store handle left");
}

/// Runs `batch` in one transaction and answers every caller after the commit.
async fn commit_batch(pool: &AnyPool, batch: Vec<Job>, counters: &Counters) {
    let shared = batch.len() > 1;
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch, &e.to_string()),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in &batch {
        match run_isolated(&mut tx, &job.op, shared).await {
            Ok(outcome) => outcomes.push(outcome),
            // A savepoint statement itself failed: the transaction is unusable.
            Err(e) => return fail_all(batch, &e.to_string()),
        }
    }
    if !outcomes.iter().any(|o| matches!(o, Ok(true))) {
        // Nothing applied: no commit (and no fsync) needed.
        if let Err(e) = tx.rollback().await {
            tracing::warn!(error = %e, "rollback of an empty batch failed");
        }
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            let _ = job.reply.send(outcome);
        }
        return;
    }
    if let Err(e) = tx.commit().await {
        tracing::error!(error = %e, ops = batch.len(), "group commit failed");
        let msg = e.to_string();
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            // Those that failed on their own keep their own answer.
            let answer = match outcome {
                Ok(true) => Err(VaultError::Commit(msg.clone())),
                other => other,
            };
            let _ = job.reply.send(answer);
        }
        return;
    }
    counters.commits.fetch_add(1, Ordering::Relaxed);
    let applied = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
    counters
        .applied
        .fetch_add(applied as u64, Ordering::Relaxed);
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        let _ = job.reply.send(outcome);
    }
}

fn fail_all(batch: Vec<Job>, msg: &str) {
    tracing::error!(error = msg, ops = batch.len(), "group commit failed");
    for job in batch {
        let _ = job.reply.send(Err(VaultError::Commit(msg.to_string())));
    }
}

/// Runs one operation; in a shared transaction inside its own savepoint, rolled back unless it
/// applied. The outer `Err` means the transaction itself broke; the inner result is the
/// operation's own answer.
async fn run_isolated(
    conn: &mut AnyConnection,
    op: &WriteOp,
    shared: bool,
) -> std::result::Result<Result<bool>, sqlx::Error> {
    if !shared {
        return Ok(apply(conn, op).await);
    }
    sqlx::query("SAVEPOINT op").execute(&mut *conn).await?;
    let outcome = apply(conn, op).await;
    if !matches!(outcome, Ok(true)) {
        sqlx::query("ROLLBACK TO SAVEPOINT op")
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("RELEASE SAVEPOINT op")
        .execute(&mut *conn)
        .await?;
    Ok(outcome)
}

async fn write_audit(conn: &mut AnyConnection, line: &AuditRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(crate::model::now())
    .bind(&line.actor)
    .bind(&line.action)
    .bind(&line.target)
    .bind(&line.detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Runs a conditional state change and, when it matched its row, the audit line.
async fn changed_then_audit(
    conn: &mut AnyConnection,
    done: sqlx::any::AnyQueryResult,
    audit: &AuditRecord,
) -> Result<bool> {
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    write_audit(conn, audit).await?;
    Ok(true)
}

/// The statements of one operation. Without a shared transaction a failure here leaves its
/// statements to the caller's rollback (the writer rolls back a batch in which nothing applied).
async fn apply(conn: &mut AnyConnection, op: &WriteOp) -> Result<bool> {
    match op {
        WriteOp::Submit {
            row,
            submitted,
            approval,
        } => {
            Store::insert_request_on(&mut *conn, row).await?;
            write_audit(conn, submitted).await?;
            if let Some(a) = approval {
                if !Store::approve_request_on(&mut *conn, &row.id, &a.by, a.at, &a.issued).await? {
                    return Err(VaultError::InvalidState(format!(
                        "request {} changed state meanwhile",
                        row.id
                    )));
                }
                write_audit(conn, &a.audit).await?;
            }
            Ok(true)
        }
        WriteOp::Approve {
            id,
            by,
            at,
            issued,
            audit,
        } => {
            if !Store::approve_request_on(&mut *conn, id, by, *at, issued).await? {
                return Ok(false);
            }
            write_audit(conn, audit).await?;
            Ok(true)
        }
        WriteOp::Reject { id, by, at, audit } => {
            let done = sqlx::query(
                "UPDATE requests SET state = 'Rejected', approved_by = $2, approved_at = $3, \
                 key_sealed = NULL, csr_der = NULL WHERE id = $1 AND state = 'New'",
            )
            .bind(id)
            .bind(by)
            .bind(*at)
            .execute(&mut *conn)
            .await?;
            changed_then_audit(conn, done, audit).await
        }
        WriteOp::Accept { id, by, at, audit } => {
            let done = sqlx::query(
                "UPDATE requests SET state = 'Accepted', accepted_by = $2, accepted_at = $3, \
                 key_sealed = NULL WHERE id = $1 AND state = 'Approved'",
            )
            .bind(id)
            .bind(by)
            .bind(*at)
            .execute(&mut *conn)
            .await?;
            changed_then_audit(conn, done, audit).await
        }
        WriteOp::Revoke { id, by, at, audit } => {
            let done = sqlx::query(
                "UPDATE requests SET state = 'Revoked', revoked_by = $2, revoked_at = $3, \
                 key_sealed = NULL WHERE id = $1 AND state IN ('Approved', 'Accepted')",
            )
            .bind(id)
            .bind(by)
            .bind(*at)
            .execute(&mut *conn)
            .await?;
            changed_then_audit(conn, done, audit).await
        }
        WriteOp::TakeKey { id, sealed, audit } => {
            let done = sqlx::query(
                "UPDATE requests SET key_sealed = NULL WHERE id = $1 AND key_sealed = $2",
            )
            .bind(id)
            .bind(sealed.clone())
            .execute(&mut *conn)
            .await?;
            changed_then_audit(conn, done, audit).await
        }
    }
}
