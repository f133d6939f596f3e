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
//! Each operation keeps its own outcome: one that fails (a conditional UPDATE that matches no
//! row, a constraint violation) fails only its own caller, and a state change and its audit
//! line commit together or not at all (see below for how).
//!
//! There is no waiting for a batch to fill: the writer starts as soon as one operation is
//! queued, and whatever arrives during that commit forms the next batch. A lone caller pays
//! exactly what it paid before.
//!
//! What a batch costs besides its fsync is statements, and with sqlx every statement is a round
//! trip to the connection's worker thread (SQLite) or to the server (PostgreSQL); profiles of
//! `iiot bench vault` showed those thread hand-offs, not SQL, as the writer's main cost. So:
//! - The writer keeps one connection for itself, detached from the pool, instead of acquiring
//!   one per batch: the pool pings every connection handed back to it (one more round trip per
//!   batch, two on PostgreSQL, which also tests on acquire), and on SQLite a connection that
//!   only the writer writes on keeps its page cache, where a pooled one found it discarded
//!   after each commit by another connection.
//! - A batch first runs without savepoints. An operation that does not apply wrote nothing
//!   (every state change is one conditional statement), so only an operation that fails
//!   part-way needs isolating; then the whole attempt is rolled back and the batch runs again
//!   with each operation and its audit lines in its own SAVEPOINT, which gives every caller
//!   the answer it would have got alone. Failures are rare.
//! - In that first run the audit lines of the operations that applied are written at the end,
//!   in operation order, in one multi-row INSERT, inside the same transaction: a batch of n
//!   operations costs n + 3 statements (BEGIN, changes, audit, COMMIT) instead of about 5n.
//!   A submission approved at once (the auto-approve policy) is one INSERT of the row as the
//!   approval leaves it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::sync::{mpsc, oneshot};

use super::requests::{Issued, NewRequest};
use super::statement::Stmt;
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
    /// INSERT (New) + audit; with an approval, the row is inserted as that approval leaves it
    /// and both audit lines (submission, approval) are written, atomically.
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
    /// Microseconds the writer spent running batches (from taking one to answering it): how
    /// close the single writer is to being the bottleneck.
    pub busy_micros: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub commits: AtomicU64,
    pub applied: AtomicU64,
    pub answered: AtomicU64,
    pub busy_micros: AtomicU64,
}

impl Counters {
    /// Counts a batch of `n` operations taken at `started` as answered.
    pub fn batch_done(&self, n: usize, started: std::time::Instant) {
        self.answered.fetch_add(n as u64, Ordering::Relaxed);
        let micros = started.elapsed().as_micros() as u64;
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        tracing::trace!(ops = n, micros, "group commit");
    }

    /// Counts a commit holding `applied` applied operations.
    pub fn committed(&self, applied: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.applied.fetch_add(applied as u64, Ordering::Relaxed);
    }
}

pub(super) struct Job {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<bool>>,
}

/// What the writer's queue carries: operations, and the request to let go of its connection
/// (see [`Writer::close`]), which is served after everything queued before it.
// Nearly every message is an operation: boxing it would cost an allocation each, to save
// queue space only for the one close message.
#[allow(clippy::large_enum_variant)]
pub(super) enum Msg {
    Op(Job),
    Close(oneshot::Sender<()>),
}

/// The queue into a store's writer task. Cloned with the store; the task ends when the last
/// clone is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Msg>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer: on SQLite (`sqlite_file`) a thread of its own that writes through
    /// rusqlite (`sqlite_writer.rs`), otherwise a task on the current runtime writing through
    /// sqlx.
    pub fn spawn(pool: AnyPool, sqlite_file: Option<std::path::PathBuf>) -> Result<Writer> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        match sqlite_file {
            Some(path) => {
                let counters = counters.clone();
                std::thread::Builder::new()
                    .name("vault-writer".into())
                    .spawn(move || super::sqlite_writer::run(&path, jobs, &counters))?;
            }
            None => {
                tokio::spawn(run(pool, jobs, counters.clone()));
            }
        }
        Ok(Writer { queue, counters })
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            applied: self.counters.applied.load(Ordering::Relaxed),
            answered: self.counters.answered.load(Ordering::Relaxed),
            busy_micros: self.counters.busy_micros.load(Ordering::Relaxed),
        }
    }

    /// Queues `op` and answers once the transaction holding it has committed (or failed).
    pub async fn submit(&self, op: WriteOp) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Msg::Op(Job { op, reply }))
            .await
            .map_err(|_| VaultError::Commit("the store's writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| VaultError::Commit("the store's writer stopped before answering".into()))?
    }

    /// Commits what was queued before this call, then closes the writer's own connection, so
    /// that closing the pool does not wait for it (and a PostgreSQL database can be dropped).
    /// Operations queued afterwards fail with [`VaultError::Commit`].
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Msg::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

async fn run(pool: AnyPool, mut jobs: mpsc::Receiver<Msg>, counters: Arc<Counters>) {
    // The writer's own connection, taken from the pool on first use and after a failure.
    let mut conn: Option<AnyConnection> = None;
    let mut closed = false;
    let mut received = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut received, MAX_BATCH).await > 0 {
        let (batch, closing) = sort_messages(received.drain(..), closed);
        if !closing.is_empty() {
            run_batch(&pool, &mut conn, batch, &counters).await;
            if let Some(c) = conn.take() {
                if let Err(e) = c.close().await {
                    tracing::debug!(error = %e, "closing the store writer's connection");
                }
            }
            closed = true;
            for done in closing {
                let _ = done.send(());
            }
            continue;
        }
        run_batch(&pool, &mut conn, batch, &counters).await;
    }
    tracing::debug!("store writer stopped: no store handle left");
}

async fn run_batch(
    pool: &AnyPool,
    conn: &mut Option<AnyConnection>,
    batch: Vec<Job>,
    counters: &Counters,
) {
    let n = batch.len();
    if n == 0 {
        return;
    }
    let started = std::time::Instant::now();
    let outcomes = commit_batch(pool, conn, &batch, counters).await;
    // Counted before the callers hear back, so a caller that reads the stats after its answer
    // sees its own operation.
    counters.batch_done(n, started);
    answer(batch, outcomes);
}

/// Splits what the queue delivered into the operations to run and the close requests among
/// them. Operations queued after a close request (or after the store `closed`) are refused
/// here: the close request is served once everything queued before it has committed.
pub(super) fn sort_messages(
    received: impl IntoIterator<Item = Msg>,
    closed: bool,
) -> (Vec<Job>, Vec<oneshot::Sender<()>>) {
    let mut batch = Vec::new();
    let mut closing = Vec::new();
    for msg in received {
        match msg {
            Msg::Op(job) if closed || !closing.is_empty() => {
                let _ = job
                    .reply
                    .send(Err(VaultError::Commit("the store is closed".into())));
            }
            Msg::Op(job) => batch.push(job),
            Msg::Close(done) => closing.push(done),
        }
    }
    (batch, closing)
}

/// How one attempt at a batch ended.
enum Attempt {
    /// Committed: each caller's answer.
    Committed(Vec<Result<bool>>),
    /// Nothing applied, so nothing was committed (and nothing synced): each caller's answer.
    RolledBack(Vec<Result<bool>>),
    /// Run without savepoints, an operation failed part-way: the attempt was rolled back and
    /// the batch must run again isolated.
    Isolate,
    /// The COMMIT failed: the answers as they stood, and why.
    CommitFailed(Vec<Result<bool>>, String),
    /// BEGIN failed; nothing was done.
    BeginFailed(sqlx::Error),
    /// The transaction itself broke (a savepoint or rollback statement failed).
    Broken(sqlx::Error),
}

/// Runs `batch` in one transaction and answers every caller after the commit.
async fn commit_batch(
    pool: &AnyPool,
    slot: &mut Option<AnyConnection>,
    batch: &[Job],
    counters: &Counters,
) -> Vec<Result<bool>> {
    let mut isolate = false;
    loop {
        let fresh = slot.is_none();
        if fresh {
            match pool.acquire().await {
                Ok(c) => *slot = Some(c.detach()),
                Err(e) => return failed(batch.len(), &e.to_string()),
            }
        }
        let Some(conn) = slot.as_mut() else {
            return failed(batch.len(), "the store writer has no connection");
        };
        match attempt(conn, batch, isolate).await {
            Attempt::Committed(outcomes) => {
                counters.committed(outcomes.iter().filter(|o| matches!(o, Ok(true))).count());
                return outcomes;
            }
            Attempt::RolledBack(outcomes) => return outcomes,
            Attempt::Isolate => isolate = true,
            Attempt::CommitFailed(outcomes, msg) => {
                // The connection's state is unknown after a failed COMMIT: start afresh.
                *slot = None;
                tracing::error!(error = %msg, ops = batch.len(), "group commit failed");
                return outcomes
                    .into_iter()
                    .map(|outcome| match outcome {
                        // Those that failed on their own keep their own answer.
                        Ok(true) => Err(VaultError::Commit(msg.clone())),
                        other => other,
                    })
                    .collect();
            }
            // A connection kept from an earlier batch may have died meanwhile (a PostgreSQL
            // restart): BEGIN did nothing, so one fresh connection is tried.
            Attempt::BeginFailed(e) if !fresh => {
                tracing::warn!(error = %e, "store writer's connection failed; reconnecting");
                *slot = None;
            }
            Attempt::BeginFailed(e) | Attempt::Broken(e) => {
                *slot = None;
                return failed(batch.len(), &e.to_string());
            }
        }
    }
}

/// One transaction over `batch`. Without `isolate`, the operations run one after the other
/// and the audit lines of those that applied are written together at the end, in operation
/// order, in one statement; with it, each operation runs with its audit lines in its own
/// savepoint.
async fn attempt(conn: &mut AnyConnection, batch: &[Job], isolate: bool) -> Attempt {
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(e) => return Attempt::BeginFailed(e),
    };
    let shared = batch.len() > 1;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut lines = Vec::new();
    for job in batch {
        let outcome = if isolate && shared {
            match run_isolated(&mut tx, &job.op).await {
                Ok(outcome) => outcome,
                Err(e) => return Attempt::Broken(e),
            }
        } else {
            change(&mut tx, &job.op).await.map(|applied| match applied {
                Some(l) => {
                    lines.extend(l);
                    true
                }
                None => false,
            })
        };
        if outcome.is_err() && shared && !isolate {
            return isolate_next(tx).await;
        }
        outcomes.push(outcome);
    }
    if let Err(e) = write_audits(&mut tx, &lines).await {
        if shared {
            return isolate_next(tx).await;
        }
        // A lone operation fails with its audit line.
        outcomes = vec![Err(e)];
    }
    if !outcomes.iter().any(|o| matches!(o, Ok(true))) {
        // Nothing applied: no commit (and no fsync) needed. A lone operation that failed
        // part-way is undone here too.
        return match tx.rollback().await {
            Ok(()) => Attempt::RolledBack(outcomes),
            Err(e) => Attempt::Broken(e),
        };
    }
    match tx.commit().await {
        Ok(()) => Attempt::Committed(outcomes),
        Err(e) => Attempt::CommitFailed(outcomes, e.to_string()),
    }
}

/// An operation of a shared attempt failed part-way (and on PostgreSQL the transaction is
/// aborted): drop the attempt so the batch runs again isolated.
async fn isolate_next(tx: sqlx::Transaction<'_, sqlx::Any>) -> Attempt {
    match tx.rollback().await {
        Ok(()) => Attempt::Isolate,
        Err(e) => Attempt::Broken(e),
    }
}

pub(super) fn answer(batch: Vec<Job>, outcomes: Vec<Result<bool>>) {
    for (job, outcome) in batch.into_iter().zip(outcomes) {
        let _ = job.reply.send(outcome);
    }
}

pub(super) fn fail_all(batch: Vec<Job>, msg: &str) {
    let outcomes = failed(batch.len(), msg);
    answer(batch, outcomes);
}

/// The answers of `n` operations of a batch that could not be committed at all.
fn failed(n: usize, msg: &str) -> Vec<Result<bool>> {
    tracing::error!(error = msg, ops = n, "group commit failed");
    (0..n)
        .map(|_| Err(VaultError::Commit(msg.to_string())))
        .collect()
}

/// Runs one operation of a shared transaction inside its own savepoint, rolled back unless it
/// applied. The outer `Err` means the transaction itself broke; the inner result is the
/// operation's own answer.
async fn run_isolated(
    conn: &mut AnyConnection,
    op: &WriteOp,
) -> std::result::Result<Result<bool>, sqlx::Error> {
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

/// Most audit lines in one INSERT (5 parameters each, far below SQLite's and PostgreSQL's
/// limits).
const AUDIT_ROWS: usize = 2 * MAX_BATCH;

/// Writes `lines` in order, in as few statements as [`AUDIT_ROWS`] allows.
async fn write_audits(conn: &mut AnyConnection, lines: &[&AuditRecord]) -> Result<()> {
    use std::fmt::Write as _;
    let at = crate::model::now();
    for chunk in lines.chunks(AUDIT_ROWS) {
        let mut sql = String::from("INSERT INTO audit (at, actor, action, target, detail) VALUES ");
        for i in 0..chunk.len() {
            let p = 5 * i;
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(
                sql,
                "{sep}(${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5
            );
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for line in chunk {
            query = query
                .bind(at)
                .bind(&line.actor)
                .bind(&line.action)
                .bind(&line.target)
                .bind(&line.detail);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The audit lines of an operation that applied: one, or two for a submission approved at once.
pub(super) type Lines<'o> = Vec<&'o AuditRecord>;

/// One operation with its audit lines written at once: what an operation does alone or in its
/// own savepoint.
async fn apply(conn: &mut AnyConnection, op: &WriteOp) -> Result<bool> {
    match change(conn, op).await? {
        None => Ok(false),
        Some(lines) => {
            write_audits(conn, &lines).await?;
            Ok(true)
        }
    }
}

/// The state change of one operation, without its audit lines: answers them when it applied,
/// `None` (and nothing written) when its condition did not hold. An `Err` may leave part of
/// the operation written; the caller rolls it back.
async fn change<'o>(conn: &mut AnyConnection, op: &'o WriteOp) -> Result<Option<Lines<'o>>> {
    let done = op.statement().execute_on(&mut *conn).await?;
    Ok(op.applied(done.rows_affected()).then(|| op.audit_lines()))
}

impl WriteOp {
    /// The operation's one statement. A conditional one changes a row only in the expected
    /// state; a submission is an INSERT that either writes its row or fails.
    pub(super) fn statement(&self) -> Stmt {
        match self {
            WriteOp::Submit { row, approval, .. } => Store::insert_request_stmt(
                row,
                approval.as_ref().map(|a| (a.by.as_str(), a.at, &a.issued)),
            ),
            WriteOp::Approve {
                id, by, at, issued, ..
            } => Store::approve_request_stmt(id, by, *at, issued),
            WriteOp::Reject { id, by, at, .. } => Stmt::new(
                "UPDATE requests SET state = 'Rejected', approved_by = $2, approved_at = $3, \
                 key_sealed = NULL, csr_der = NULL WHERE id = $1 AND state = 'New'",
                vec![id.into(), by.into(), (*at).into()],
            ),
            WriteOp::Accept { id, by, at, .. } => Stmt::new(
                "UPDATE requests SET state = 'Accepted', accepted_by = $2, accepted_at = $3, \
                 key_sealed = NULL WHERE id = $1 AND state = 'Approved'",
                vec![id.into(), by.into(), (*at).into()],
            ),
            WriteOp::Revoke { id, by, at, .. } => Stmt::new(
                "UPDATE requests SET state = 'Revoked', revoked_by = $2, revoked_at = $3, \
                 key_sealed = NULL WHERE id = $1 AND state IN ('Approved', 'Accepted')",
                vec![id.into(), by.into(), (*at).into()],
            ),
            WriteOp::TakeKey { id, sealed, .. } => Stmt::new(
                "UPDATE requests SET key_sealed = NULL WHERE id = $1 AND key_sealed = $2",
                vec![id.into(), sealed.clone().into()],
            ),
        }
    }

    /// Whether the statement, having changed `rows` rows, applied the operation.
    pub(super) fn applied(&self, rows: u64) -> bool {
        matches!(self, WriteOp::Submit { .. }) || rows == 1
    }

    /// The audit lines written when the operation applies: one, or two for a submission
    /// approved at once.
    pub(super) fn audit_lines(&self) -> Lines<'_> {
        match self {
            WriteOp::Submit {
                submitted,
                approval: Some(a),
                ..
            } => vec![submitted, &a.audit],
            WriteOp::Submit { submitted, .. } => vec![submitted],
            WriteOp::Approve { audit, .. }
            | WriteOp::Reject { audit, .. }
            | WriteOp::Accept { audit, .. }
            | WriteOp::Revoke { audit, .. }
            | WriteOp::TakeKey { audit, .. } => vec![audit],
        }
    }
}
