//! The writer's OPC UA session: pinning it (with backoff), resuming after the pool reconnects
//! it, the watchdog over silent subscriptions, and the orderly stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opcua::client::Session;
use tokio::sync::watch;
use tracing::{info, warn};

use super::super::subscription::Silence;
use super::Writer;
use crate::opcua::node_id::Namespaces;
use crate::opcua::session_pool::{PinnedSession, Reconnects};

const CONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(500);
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The session a writer is pinned to and what it knows of it.
pub struct SessionLink {
    pinned: Option<PinnedSession>,
    /// Taken out by the select loop while it waits on it.
    pub(super) reconnects: Option<watch::Receiver<Reconnects>>,
    /// The last reconnect state handled, to tell whether a new session came since.
    reconnects_seen: Reconnects,
    /// The session's namespace array, re-read after each reconnect.
    pub(super) ns: Namespaces,
    next_connect: Instant,
    connect_backoff: Duration,
}

impl SessionLink {
    pub fn new(now: Instant) -> Self {
        Self {
            pinned: None,
            reconnects: None,
            reconnects_seen: Reconnects::default(),
            ns: Namespaces(Vec::new()),
            next_connect: now,
            connect_backoff: CONNECT_BACKOFF_FIRST,
        }
    }

    /// No usable session, and the backoff after the last failure has passed.
    pub fn needs_connect(&self, now: Instant) -> bool {
        self.pinned.as_ref().is_none_or(|s| s.is_dead()) && now >= self.next_connect
    }

    /// The next connect attempt, while there is no session.
    pub fn connect_at(&self) -> Option<Instant> {
        self.pinned.is_none().then_some(self.next_connect)
    }

    /// The session, even if it died since.
    pub fn session(&self) -> Option<Arc<Session>> {
        self.pinned.as_ref().map(|s| s.session.clone())
    }

    /// The session, if it has not died.
    pub fn live_session(&self) -> Option<Arc<Session>> {
        self.pinned
            .as_ref()
            .filter(|s| !s.is_dead())
            .map(|s| s.session.clone())
    }

    fn application_uri(&self) -> String {
        self.pinned
            .as_ref()
            .map(|s| s.endpoint.server.application_uri.as_ref().to_string())
            .unwrap_or_default()
    }

    fn failed(&mut self, now: Instant) {
        self.next_connect = now + self.connect_backoff;
        self.connect_backoff = (self.connect_backoff * 2).min(CONNECT_BACKOFF_MAX);
    }
}

impl Writer {
    /// Pins a session and creates everything on it; on failure, tries again after a backoff
    /// (0.5 s, doubling up to 30 s).
    pub(super) async fn connect(&mut self) {
        self.link.pinned = None;
        self.link.reconnects = None;
        self.subs.forget_server_state();
        self.wdiag.connected.set(0);
        match self.ctx.pool.pin(&self.setup.key).await {
            Ok(pinned) => {
                self.link.connect_backoff = CONNECT_BACKOFF_FIRST;
                self.link.ns = pinned.namespaces().await;
                let reconnects = pinned.reconnects();
                self.link.reconnects_seen = *reconnects.borrow();
                self.link.reconnects = Some(reconnects);
                let session = pinned.session.clone();
                self.subs.set_backlog(pinned.backlog.clone());
                self.link.pinned = Some(pinned);
                self.wdiag.connected.set(1);
                let started = Instant::now();
                self.subs.sync(&session, &self.link.ns).await;
                info!(
                    writer = %self.plan.id,
                    url = %self.setup.key.url,
                    good = self.subs.good_count(),
                    bad = self.subs.bad_count(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "writer subscribed"
                );
                for (node, status) in self.subs.bad_items().into_iter().take(10) {
                    warn!(writer = %self.plan.id, %node, %status, "node not monitored; retrying with backoff");
                }
                self.state.set_application_uri(self.link.application_uri());
                self.metadata.resend();
                self.send_metadata().await;
            }
            Err(e) => {
                warn!(writer = %self.plan.id, url = %self.setup.key.url, error = %e,
                      retry_in_ms = self.link.connect_backoff.as_millis() as u64, "cannot open a session for the writer");
                *self
                    .wdiag
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                self.link.failed(Instant::now());
            }
        }
    }

    /// The pool reconnected the session: transfer or re-create the subscriptions as needed,
    /// and ask for a publish at once so values resume without waiting for the next interval.
    pub(super) async fn after_reconnect(&mut self) {
        let Some(pinned) = self.link.pinned.as_ref() else {
            return;
        };
        self.ctx.diag.pipeline.opcua_reconnects.inc();
        self.wdiag.reconnects.inc();
        let session = pinned.session.clone();
        let now = self
            .link
            .reconnects
            .as_ref()
            .map(|r| *r.borrow())
            .unwrap_or_default();
        let new_session = now.new_sessions != self.link.reconnects_seen.new_sessions;
        self.link.reconnects_seen = now;
        let before = std::mem::replace(&mut self.link.ns, pinned.namespaces().await);
        self.subs
            .after_reconnect(&session, &before, &self.link.ns, new_session)
            .await;
        self.subs.sync(&session, &self.link.ns).await;
        session.trigger_publish_now();
        info!(writer = %self.plan.id, good = self.subs.good_count(), bad = self.subs.bad_count(),
              "writer resumed after reconnect");
    }

    /// Items the server refused are due for another try; new types mean new metadata.
    pub(super) async fn retry_refused_items(&mut self) {
        if let Some(session) = self.link.live_session() {
            let before = self.subs.good_count();
            self.subs.sync(&session, &self.link.ns).await;
            if self.subs.good_count() != before {
                self.send_metadata().await;
            }
        }
    }

    /// Revives subscriptions that fell silent: first by triggering a publish, then, if they
    /// stay silent, by re-creating them.
    pub(super) async fn watchdog(&mut self) {
        let Some(pinned) = self.link.pinned.as_ref() else {
            return;
        };
        if pinned.is_dead() || !pinned.is_connected() {
            return;
        }
        let session = pinned.session.clone();
        let silent = self.subs.silent_slots(Instant::now());
        for s in silent.iter().filter(|s| s.silence == Silence::Revive) {
            warn!(writer = %self.plan.id, subscription = s.server_id, "subscription silent; triggering a publish");
            session.trigger_publish_now();
            self.ctx.diag.pipeline.watchdog_revivals.inc();
        }
        for s in silent.iter().filter(|s| s.silence == Silence::Recreate) {
            warn!(writer = %self.plan.id, "subscription still silent; re-creating it");
            self.ctx.diag.pipeline.watchdog_revivals.inc();
            self.subs
                .recreate_slot(&session, &self.link.ns, s.slot)
                .await;
        }
    }

    /// Flushes what is batched, waits for every commit, deletes the subscriptions and the
    /// writer's diagnostics.
    pub(super) async fn stop(&mut self) {
        self.flush().await;
        self.settle(0).await;
        if let Some(s) = self.link.pinned.take() {
            let session = s.session.clone();
            self.subs.delete_all(&session).await;
        } else {
            let handles = self.fields.handles().to_vec();
            self.subs.forget(&handles);
        }
        let ms = self.plan.publishing_interval.as_millis() as u64;
        self.ctx
            .diag
            .remove_writer(&self.plan.group, &self.plan.id, ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_attempts_back_off_to_a_cap() {
        let t0 = Instant::now();
        let mut link = SessionLink::new(t0);
        assert!(link.needs_connect(t0), "a new writer connects at once");
        assert_eq!(link.connect_at(), Some(t0));
        let mut waits = Vec::new();
        let mut now = t0;
        for _ in 0..10 {
            link.failed(now);
            let at = link.connect_at().unwrap();
            waits.push(at - now);
            assert!(!link.needs_connect(at - Duration::from_millis(1)));
            assert!(link.needs_connect(at));
            now = at;
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
    }
}
