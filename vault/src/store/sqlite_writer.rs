//! The group-commit writer on SQLite: a thread of its own that runs each batch through
//! rusqlite, inline.
//!
//! Why: the writer is the one serial step every certificate passes twice (submit, accept), so
//! its time per batch bounds the vault's rate. Through sqlx every statement of a batch (BEGIN,
//! one per operation, the audit lines, COMMIT) was a hand-off to the connection's worker thread
//! and back; under load `iiot bench vault` showed the writer busy ~98% of the time at about
//! three times what SQLite itself needs for the same batch. Here the statements run on the
//! writer's own thread with prepared statements kept per connection; the only hand-offs left
//! are taking a batch from the queue and answering its callers.
//!
//! The semantics are those of `writer.rs`: everything queued (up to [`MAX_BATCH`]) goes into
//! one transaction, committed with `synchronous = FULL` before any caller hears back; each
//! operation runs in its own SAVEPOINT (cheap here, no round trip), so one that fails or does
//! not apply is undone alone and the rest commit.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::mpsc;

use super::statement::Stmt;
use super::writer::{
    answer, fail_all, sort_messages, AuditRecord, Counters, Job, Msg, WriteOp, MAX_BATCH,
};
use crate::error::Result;

const AUDIT_INSERT: &str =
    "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)";

/// Serves `jobs` until every [`super::writer::Writer`] handle is gone.
pub(super) fn run(path: &Path, mut jobs: mpsc::Receiver<Msg>, counters: &Counters) {
    // The writer's connection, opened on first use and again after a failure.
    let mut conn: Option<Connection> = None;
    let mut closed = false;
    while let Some(first) = jobs.blocking_recv() {
        let mut received = vec![first];
        while received.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(msg) => received.push(msg),
                Err(_) => break,
            }
        }
        let (batch, closing) = sort_messages(received, closed);
        if !closing.is_empty() {
            run_batch(path, &mut conn, batch, counters);
            conn = None;
            closed = true;
            for done in closing {
                let _ = done.send(());
            }
            continue;
        }
        run_batch(path, &mut conn, batch, counters);
    }
    tracing::debug!("store writer stopped: no store handle left");
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // As on the sqlx connections: FULL so that no build default weakens a commit, and the
    // foreign keys sqlx turns on.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

fn run_batch(path: &Path, slot: &mut Option<Connection>, batch: Vec<Job>, counters: &Counters) {
    let n = batch.len();
    if n == 0 {
        return;
    }
    let started = Instant::now();
    let done = match slot {
        Some(conn) => commit_batch(conn, &batch),
        None => open(path).and_then(|conn| commit_batch(slot.insert(conn), &batch)),
    };
    // Counted before the callers hear back, so a caller that reads the stats after its answer
    // sees its own operation.
    match done {
        Ok((outcomes, applied)) => {
            if applied > 0 {
                counters.committed(applied);
            }
            counters.batch_done(n, started);
            answer(batch, outcomes);
        }
        Err(e) => {
            // Opening, BEGIN or COMMIT failed: the connection's state is unknown; start afresh.
            *slot = None;
            counters.batch_done(n, started);
            fail_all(batch, &e.to_string());
        }
    }
}

/// One transaction over `batch`; answers each caller's outcome and how many applied. An
/// `Err` means nothing of the batch was committed.
fn commit_batch(conn: &mut Connection, batch: &[Job]) -> Result<(Vec<Result<bool>>, usize)> {
    let at = crate::model::now();
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let mut sp = tx.savepoint()?;
        let outcome = apply(&sp, &job.op, at);
        if matches!(outcome, Ok(true)) {
            sp.commit()?;
        } else {
            sp.rollback()?;
        }
        outcomes.push(outcome);
    }
    let applied = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
    if applied == 0 {
        // Nothing to sync.
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok((outcomes, applied))
}

/// One operation and, when it applied, its audit lines.
fn apply(conn: &Connection, op: &WriteOp, at: i64) -> Result<bool> {
    let rows = op.statement().execute_sqlite(conn)?;
    if !op.applied(rows as u64) {
        return Ok(false);
    }
    for line in op.audit_lines() {
        audit_stmt(line, at).execute_sqlite(conn)?;
    }
    Ok(true)
}

fn audit_stmt(line: &AuditRecord, at: i64) -> Stmt {
    Stmt::new(
        AUDIT_INSERT,
        vec![
            at.into(),
            (&line.actor).into(),
            (&line.action).into(),
            (&line.target).into(),
            (&line.detail).into(),
        ],
    )
}
