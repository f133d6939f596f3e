//! One OPC UA session per (endpoint, security, user), shared by every caller.
//!
//! Servers limit sessions (often to a few dozen), so a burst of API calls must never turn into
//! a burst of sessions: callers of the same connection wait on the first one's connect and
//! then share its session, with a cap on requests in flight per session and on sessions in
//! total. Sessions linger after their last use so that polling clients do not pay a
//! handshake per call, and are closed by a reaper once idle.

use super::notification_backlog::NotificationBacklog;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures::StreamExt;
use opcua::client::{
    Client, IdentityToken, Password, Session, SessionConnectMode, SessionPollResult,
};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    AttributeId, EndpointDescription, MessageSecurityMode, NodeId, ReadValueId, StatusCode,
    TimestampsToReturn, UserTokenType, VariableId, Variant,
};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, RwLock, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::node_id::Namespaces;
use crate::error::{ErrorKind, Result, ServiceError};

/// Which message security the caller wants; `Best` picks the most secure endpoint offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SecurityChoice {
    #[default]
    Best,
    None,
    Sign,
    SignAndEncrypt,
    /// Any endpoint except an unsecured one.
    NotNone,
}

/// The identity a session activates with. Passwords never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub enum UserIdentity {
    #[default]
    Anonymous,
    UserName {
        user: String,
        password: String,
    },
}

impl fmt::Debug for UserIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserIdentity::Anonymous => write!(f, "Anonymous"),
            UserIdentity::UserName { user, .. } => write!(f, "UserName({user}, ***)"),
        }
    }
}

/// What identifies a pooled session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    pub url: String,
    pub security: SecurityChoice,
    /// Security policy URI, or `None` for any.
    pub policy: Option<String>,
    pub user: UserIdentity,
}

/// How long closing a session waits for the server's answer (a stopping module closes all).
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Limits and timings of the pool, defaults in one place.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_sessions: usize,
    pub max_requests_per_session: usize,
    pub linger: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_sessions: 100,
            max_requests_per_session: 64,
            linger: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What a holder of subscriptions needs to know about reconnects. Counters rather than the
/// last event, because a watch keeps only the newest value and a reactivation that follows a
/// new session must not hide it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconnects {
    pub count: u64,
    /// Reconnects that needed a new session on the server: its subscriptions stayed with the
    /// old session and must be transferred (or re-created).
    pub new_sessions: u64,
}

/// A connected session with what every operation needs beside it.
pub struct LiveSession {
    pub session: Arc<Session>,
    pub endpoint: EndpointDescription,
    /// Publish responses handed to writers and not yet processed; the session's Publish
    /// requests wait on it.
    pub backlog: Arc<NotificationBacklog>,
    namespaces: RwLock<Namespaces>,
    connected: Arc<AtomicBool>,
    closed: AtomicBool,
    /// Set when the session's event loop ended for good (retries exhausted, closed).
    ended: Arc<AtomicBool>,
    /// Long-lived holders (publisher subscriptions): a pinned session is never reaped or
    /// evicted to make room, since closing it would cut a data stream.
    pins: AtomicUsize,
    /// Counts reconnects (after namespaces were re-read), so holders of subscriptions can
    /// transfer or re-create them.
    reconnects: watch::Sender<Reconnects>,
    last_used: StdMutex<Instant>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    event_task: StdMutex<Option<JoinHandle<()>>>,
}

impl LiveSession {
    pub async fn namespaces(&self) -> Namespaces {
        self.namespaces.read().await.clone()
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// True once the session can no longer be used and must be acquired anew.
    pub fn is_dead(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.ended.load(Ordering::SeqCst)
    }

    /// Changes each time the session reconnected and its namespaces were re-read.
    pub fn reconnects(&self) -> watch::Receiver<Reconnects> {
        self.reconnects.subscribe()
    }

    fn is_pinned(&self) -> bool {
        self.pins.load(Ordering::SeqCst) > 0
    }

    fn is_idle_for(&self, linger: Duration) -> bool {
        if self.is_pinned() {
            return false;
        }
        let idle = self
            .last_used
            .lock()
            .map(|t| t.elapsed() >= linger)
            .unwrap_or(true);
        idle && self.in_flight.available_permits() == self.max_in_flight
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.session.disable_reconnects();
        // Bounded like a writer's cleanup: a server that is gone must not hold a stop.
        let _ = tokio::time::timeout(CLOSE_GRACE, self.session.disconnect()).await;
        if let Ok(mut task) = self.event_task.lock() {
            if let Some(task) = task.take() {
                task.abort();
            }
        }
    }
}

/// A caller's hold on a session; holding it counts as one request in flight.
pub struct SessionLease {
    live: Arc<LiveSession>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for SessionLease {
    type Target = LiveSession;
    fn deref(&self) -> &LiveSession {
        &self.live
    }
}

impl Drop for SessionLease {
    fn drop(&mut self) {
        if let Ok(mut t) = self.live.last_used.lock() {
            *t = Instant::now();
        }
    }
}

/// A long-lived hold on a session that does not count as a request in flight; while any
/// exists the session stays open.
pub struct PinnedSession {
    live: Arc<LiveSession>,
}

impl PinnedSession {
    pub fn live(&self) -> &Arc<LiveSession> {
        &self.live
    }
}

impl std::ops::Deref for PinnedSession {
    type Target = LiveSession;
    fn deref(&self) -> &LiveSession {
        &self.live
    }
}

impl Drop for PinnedSession {
    fn drop(&mut self) {
        self.live.pins.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut t) = self.live.last_used.lock() {
            *t = Instant::now();
        }
    }
}

#[derive(Default)]
struct Slot {
    live: tokio::sync::Mutex<Option<Arc<LiveSession>>>,
}

/// The pool. Cheap to share behind an `Arc`.
pub struct SessionPool {
    client: Arc<Client>,
    config: PoolConfig,
    slots: DashMap<ConnectionKey, Arc<Slot>>,
}

impl SessionPool {
    pub fn new(client: Arc<Client>, config: PoolConfig) -> Arc<Self> {
        let pool = Arc::new(Self {
            client,
            config,
            slots: DashMap::new(),
        });
        let weak = Arc::downgrade(&pool);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let Some(pool) = weak.upgrade() else { break };
                pool.reap_idle().await;
            }
        });
        pool
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Number of sessions currently open.
    pub fn open_sessions(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| {
                s.value()
                    .live
                    .try_lock()
                    .map(|l| l.is_some())
                    .unwrap_or(true)
            })
            .count()
    }

    /// Gets a session for the connection, connecting if there is none.
    pub async fn acquire(&self, key: &ConnectionKey) -> Result<SessionLease> {
        let live = self.live_session(key).await?;
        let permit = tokio::time::timeout(
            self.config.request_timeout,
            live.in_flight.clone().acquire_owned(),
        )
        .await
        .map_err(|_| {
            ServiceError::new(
                ErrorKind::Unavailable,
                StatusCode::BadTooManyOperations,
                "too many requests in flight on this session",
            )
        })?
        .map_err(|_| ServiceError::internal("session closed"))?;
        Ok(SessionLease {
            live,
            _permit: permit,
        })
    }

    /// Drops a session so the next call reconnects (used after fatal session errors).
    /// A hold that keeps the session open for as long as it lives (subscriptions).
    pub async fn pin(&self, key: &ConnectionKey) -> Result<PinnedSession> {
        let live = self.live_session(key).await?;
        live.pins.fetch_add(1, Ordering::SeqCst);
        Ok(PinnedSession { live })
    }

    async fn live_session(&self, key: &ConnectionKey) -> Result<Arc<LiveSession>> {
        let slot = self.slots.entry(key.clone()).or_default().clone();
        let mut guard = slot.live.lock().await;
        match guard.as_ref() {
            Some(live) if !live.is_dead() => Ok(live.clone()),
            _ => {
                if let Some(dead) = guard.take() {
                    dead.close().await;
                }
                self.make_room(key).await?;
                let live = self.connect(key).await?;
                *guard = Some(live.clone());
                Ok(live)
            }
        }
    }

    pub async fn evict(&self, key: &ConnectionKey) {
        if let Some((_, slot)) = self.slots.remove(key) {
            if let Some(live) = slot.live.lock().await.take() {
                live.close().await;
            }
        }
    }

    /// Closes every session at once, so a stop takes one close's grace however many servers
    /// are unreachable.
    pub async fn close_all(&self) {
        let keys: Vec<_> = self.slots.iter().map(|e| e.key().clone()).collect();
        futures::future::join_all(keys.iter().map(|key| self.evict(key))).await;
    }

    async fn reap_idle(&self) {
        let slots: Vec<_> = self
            .slots
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        for (key, slot) in slots {
            let Ok(mut guard) = slot.live.try_lock() else {
                continue;
            };
            let idle = guard
                .as_ref()
                .map(|l| (l.is_dead() && !l.is_pinned()) || l.is_idle_for(self.config.linger))
                .unwrap_or(true);
            if idle {
                if let Some(live) = guard.take() {
                    debug!(url = %key.url, "closing idle session");
                    live.close().await;
                }
                drop(guard);
                self.slots.remove_if(&key, |_, s| Arc::ptr_eq(s, &slot));
            }
        }
    }

    /// Keeps the session count under the cap by closing the least recently used idle one.
    async fn make_room(&self, key: &ConnectionKey) -> Result<()> {
        loop {
            let mut candidates = Vec::new();
            let mut open = 0usize;
            for e in self.slots.iter() {
                if e.key() == key {
                    continue;
                }
                if let Ok(g) = e.value().live.try_lock() {
                    if let Some(l) = g.as_ref() {
                        open += 1;
                        if !l.is_pinned() && l.in_flight.available_permits() == l.max_in_flight {
                            let used = l
                                .last_used
                                .lock()
                                .map(|t| *t)
                                .unwrap_or_else(|_| Instant::now());
                            candidates.push((used, e.key().clone()));
                        }
                    }
                } else {
                    open += 1;
                }
            }
            if open < self.config.max_sessions {
                return Ok(());
            }
            candidates.sort_by_key(|(used, _)| *used);
            match candidates.into_iter().next() {
                Some((_, victim)) => self.evict(&victim).await,
                None => {
                    return Err(ServiceError::new(
                        ErrorKind::Unavailable,
                        StatusCode::BadTooManySessions,
                        format!(
                            "all {} sessions are busy; raise --max-sessions",
                            self.config.max_sessions
                        ),
                    ))
                }
            }
        }
    }

    async fn connect(&self, key: &ConnectionKey) -> Result<Arc<LiveSession>> {
        let timeout = self.config.connect_timeout;
        let endpoints = tokio::time::timeout(
            timeout,
            self.client.get_server_endpoints_from_url(key.url.as_str()),
        )
        .await
        .map_err(|_| {
            ServiceError::new(
                ErrorKind::Timeout,
                StatusCode::BadTimeout,
                format!("no answer from {} within {timeout:?}", key.url),
            )
        })?
        .map_err(|e| ServiceError::from_opcua(&e, &format!("GetEndpoints on {}", key.url)))?;
        let mut endpoint = select_endpoint(&self.client, &endpoints, key)?;
        // Connect to the address the caller gave; servers often advertise a host name that
        // does not resolve from where the module runs.
        endpoint.endpoint_url = key.url.as_str().into();
        let token = match &key.user {
            UserIdentity::Anonymous => IdentityToken::Anonymous,
            UserIdentity::UserName { user, password } => {
                IdentityToken::UserName(user.clone(), Password::new(password.clone()))
            }
        };
        let (session, event_loop) = self
            .client
            .session_builder()
            .connect_to_endpoint_directly(endpoint.clone())
            .map_err(|e| ServiceError::from_opcua(&e, "endpoint"))?
            .user_identity_token(token)
            .build(self.client.certificate_store().clone())
            .map_err(|e| ServiceError::from_opcua(&e, "session"))?;

        let connected = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(AtomicBool::new(false));
        let ended_flag = ended.clone();
        let (first_tx, first_rx) = oneshot::channel::<std::result::Result<(), StatusCode>>();
        // true: the reconnect made a new session.
        let (reconnected_tx, mut reconnected_rx) = tokio::sync::mpsc::channel::<bool>(4);
        let flag = connected.clone();
        let url = key.url.clone();
        let task = tokio::spawn(async move {
            let mut first = Some(first_tx);
            let stream = event_loop.enter();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(SessionPollResult::Reconnected(mode)) => {
                        flag.store(true, Ordering::Relaxed);
                        match first.take() {
                            Some(tx) => {
                                let _ = tx.send(Ok(()));
                            }
                            None => {
                                info!(%url, ?mode, "session reconnected");
                                let new = matches!(mode, SessionConnectMode::NewSession(_));
                                if reconnected_tx.try_send(new).is_err() && new {
                                    // Full: a new session must still be seen by the holders.
                                    let _ = reconnected_tx.send(new).await;
                                }
                            }
                        }
                    }
                    Ok(SessionPollResult::ReconnectFailed(status)) => {
                        flag.store(false, Ordering::Relaxed);
                        if let Some(tx) = first.take() {
                            let _ = tx.send(Err(status));
                            break;
                        }
                        debug!(%url, %status, "reconnect failed");
                    }
                    Ok(SessionPollResult::ConnectionLost(status)) => {
                        flag.store(false, Ordering::Relaxed);
                        warn!(%url, %status, "connection lost");
                    }
                    Ok(_) => {}
                    Err(status) => {
                        flag.store(false, Ordering::Relaxed);
                        if let Some(tx) = first.take() {
                            let _ = tx.send(Err(status));
                        }
                        debug!(%url, %status, "session event loop ended");
                        break;
                    }
                }
            }
            flag.store(false, Ordering::Relaxed);
            ended_flag.store(true, Ordering::SeqCst);
        });

        let outcome = tokio::time::timeout(timeout, first_rx).await;
        let failure = match outcome {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(status))) => Some(ServiceError::from_status(
                status,
                format!("cannot open a session to {}: {status}", key.url),
            )),
            Ok(Err(_)) => Some(ServiceError::new(
                ErrorKind::Unavailable,
                StatusCode::BadConnectionClosed,
                format!("session to {} ended while connecting", key.url),
            )),
            Err(_) => Some(ServiceError::new(
                ErrorKind::Timeout,
                StatusCode::BadTimeout,
                format!("no session to {} within {timeout:?}", key.url),
            )),
        };
        if let Some(err) = failure {
            session.disable_reconnects();
            task.abort();
            return Err(err);
        }

        let namespaces = read_namespaces(&session).await?;
        let backlog = Arc::new(NotificationBacklog::default());
        session.set_publish_gate(backlog.clone());
        let live = Arc::new(LiveSession {
            session: session.clone(),
            endpoint,
            backlog,
            namespaces: RwLock::new(namespaces),
            connected,
            closed: AtomicBool::new(false),
            ended,
            pins: AtomicUsize::new(0),
            reconnects: watch::channel(Reconnects::default()).0,
            last_used: StdMutex::new(Instant::now()),
            in_flight: Arc::new(Semaphore::new(self.config.max_requests_per_session)),
            max_in_flight: self.config.max_requests_per_session,
            event_task: StdMutex::new(Some(task)),
        });
        // Namespace indexes may change when a server restarts: re-read them on every
        // reconnect so `nsu=` ids keep resolving to the right index.
        let weak = Arc::downgrade(&live);
        tokio::spawn(async move {
            while let Some(new_session) = reconnected_rx.recv().await {
                let Some(live) = weak.upgrade() else { break };
                match read_namespaces(&live.session).await {
                    Ok(ns) => *live.namespaces.write().await = ns,
                    Err(e) => warn!(error = %e, "re-reading namespaces after reconnect failed"),
                }
                live.reconnects.send_modify(|r| {
                    r.count += 1;
                    r.new_sessions += u64::from(new_session);
                });
            }
        });
        info!(url = %key.url, mode = ?live.endpoint.security_mode,
              policy = %live.endpoint.security_policy_uri, "session open");
        Ok(live)
    }
}

/// Reads the server's NamespaceArray (i=2255).
pub async fn read_namespaces(session: &Session) -> Result<Namespaces> {
    let node = ReadValueId {
        node_id: NodeId::from(VariableId::Server_NamespaceArray),
        attribute_id: AttributeId::Value as u32,
        ..Default::default()
    };
    let values = session
        .read(&[node], TimestampsToReturn::Neither, 0.0)
        .await
        .map_err(|e| ServiceError::from_opcua(&e, "reading NamespaceArray"))?;
    let mut uris = Vec::new();
    if let Some(Variant::Array(a)) = values.first().and_then(|v| v.value.as_ref()) {
        for v in &a.values {
            if let Variant::String(s) = v {
                uris.push(s.as_ref().to_string());
            }
        }
    }
    if uris.is_empty() {
        uris.push("http://opcfoundation.org/UA/".to_string());
    }
    Ok(Namespaces(uris))
}

/// Picks the endpoint matching the requested security, policy and user token type.
pub fn select_endpoint(
    client: &Client,
    endpoints: &[EndpointDescription],
    key: &ConnectionKey,
) -> Result<EndpointDescription> {
    let wanted_token = match key.user {
        UserIdentity::Anonymous => UserTokenType::Anonymous,
        UserIdentity::UserName { .. } => UserTokenType::UserName,
    };
    let policy = key.policy.as_deref().map(normalize_policy);
    let mut offered: HashMap<String, usize> = HashMap::new();
    let best = endpoints
        .iter()
        .filter(|e| {
            *offered
                .entry(format!(
                    "{:?}/{}",
                    e.security_mode,
                    e.security_policy_uri.as_ref()
                ))
                .or_default() += 1;
            client.is_supported_endpoint(e)
        })
        .filter(|e| match key.security {
            SecurityChoice::Best => true,
            SecurityChoice::None => e.security_mode == MessageSecurityMode::None,
            SecurityChoice::Sign => e.security_mode == MessageSecurityMode::Sign,
            SecurityChoice::SignAndEncrypt => {
                e.security_mode == MessageSecurityMode::SignAndEncrypt
            }
            SecurityChoice::NotNone => e.security_mode != MessageSecurityMode::None,
        })
        .filter(|e| {
            policy
                .as_deref()
                .is_none_or(|p| e.security_policy_uri.as_ref() == p)
        })
        .filter(|e| {
            e.user_identity_tokens
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|t| t.token_type == wanted_token)
        })
        .max_by_key(|e| (e.security_level, e.security_mode as i32));
    best.cloned().ok_or_else(|| {
        let mut list: Vec<_> = offered.into_keys().collect();
        list.sort();
        ServiceError::new(
            ErrorKind::Service,
            StatusCode::BadSecurityPolicyRejected,
            format!(
                "no endpoint of {} matches security {:?}, policy {:?}, token {:?}; offered: {}",
                key.url,
                key.security,
                key.policy,
                wanted_token,
                list.join(", ")
            ),
        )
    })
}

/// Accepts a policy as its URI or its short name (`Basic256Sha256`).
pub fn normalize_policy(policy: &str) -> String {
    if policy.contains('#') {
        return policy.to_string();
    }
    // `to_uri` panics on Unknown, so only known policies go through it.
    match SecurityPolicy::from_str(policy) {
        Ok(SecurityPolicy::Unknown) | Err(_) => {
            format!("http://opcfoundation.org/UA/SecurityPolicy#{policy}")
        }
        Ok(p) => p.to_uri().to_string(),
    }
}
