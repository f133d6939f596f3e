//! The identities connected to this hub right now, and the direct-method calls waiting for
//! their answers: what the service routes use to reach a device at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};

use super::codec::Goodbye;

/// What a session is asked to send or do.
#[derive(Debug)]
pub enum Outbound {
    Publish { topic: String, payload: Bytes },
    Close(Goodbye),
}

/// What a session has subscribed to: the hub only sends what a device asked for.
#[derive(Debug, Default)]
pub struct Subscriptions {
    pub twin_responses: AtomicBool,
    pub desired: AtomicBool,
    pub methods: AtomicBool,
    pub cloud_to_device: AtomicBool,
    pub inputs: AtomicBool,
}

/// One live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: u64,
    pub tx: mpsc::Sender<Outbound>,
    pub subscriptions: Arc<Subscriptions>,
}

/// Why a direct method did not get an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum MethodError {
    /// Not connected, or not subscribed to methods (IoT Hub's 404 DeviceNotOnline).
    NotOnline,
    /// No answer within the caller's timeout (IoT Hub's 504).
    Timeout,
}

type Key = (String, String);

#[derive(Default)]
pub struct Live {
    sessions: DashMap<Key, Session>,
    /// Subscriptions of identities whose last session asked to keep them (clean session 0):
    /// Microsoft's SDKs do not subscribe again after a reconnect.
    kept: DashMap<Key, Arc<Subscriptions>>,
    /// Waiting calls by `$rid`, with the identity that must answer them.
    calls: DashMap<String, (Key, oneshot::Sender<(i32, Bytes)>)>,
    next: AtomicU64,
}

/// Removes a waiting call however the caller's future ends (answer, timeout or drop).
struct CallGuard<'a> {
    live: &'a Live,
    rid: String,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.live.calls.remove(&self.rid);
    }
}

impl Live {
    /// Registers a new session for an identity; the one it replaces (if any) is returned so
    /// the caller can tell it to close (a second connection takes over, as in IoT Hub).
    pub fn register(
        &self,
        device_id: &str,
        module_id: &str,
        tx: mpsc::Sender<Outbound>,
        clean: bool,
    ) -> (Session, Option<Session>) {
        let key: Key = (device_id.into(), module_id.into());
        let subscriptions = if clean {
            self.kept.remove(&key);
            Arc::new(Subscriptions::default())
        } else {
            self.kept
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Subscriptions::default()))
                .clone()
        };
        let session = Session {
            id: self.next.fetch_add(1, Ordering::Relaxed) + 1,
            tx,
            subscriptions,
        };
        let old = self.sessions.insert(key, session.clone());
        (session, old)
    }

    /// Forgets kept subscriptions (the identity was deleted).
    pub fn forget(&self, device_id: &str, module_id: Option<&str>) {
        self.kept
            .retain(|k, _| !(k.0 == device_id && module_id.is_none_or(|m| k.1 == m)));
    }

    /// Forgets the session `id` unless another took its place already. Returns whether it
    /// was still the identity's session (so only then is the identity marked disconnected).
    pub fn unregister(&self, device_id: &str, module_id: &str, id: u64) -> bool {
        self.sessions
            .remove_if(&(device_id.into(), module_id.into()), |_, s| s.id == id)
            .is_some()
    }

    pub fn session(&self, device_id: &str, module_id: &str) -> Option<Session> {
        self.sessions
            .get(&(device_id.to_string(), module_id.to_string()))
            .map(|s| s.clone())
    }

    /// Ends the session of an identity (deleted or disabled).
    pub fn close(&self, device_id: &str, module_id: &str) {
        if let Some(s) = self.session(device_id, module_id) {
            let _ = s.tx.try_send(Outbound::Close(Goodbye::NotAuthorized));
        }
    }

    /// Ends every session of a device, its modules' included.
    pub fn close_device(&self, device_id: &str) {
        for s in self.sessions.iter().filter(|e| e.key().0 == device_id) {
            let _ = s.tx.try_send(Outbound::Close(Goodbye::NotAuthorized));
        }
    }

    /// Sends a request to the identity and waits for the response matched by its `$rid`.
    pub async fn invoke(
        &self,
        device_id: &str,
        module_id: &str,
        method: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<(i32, Bytes), MethodError> {
        let session = self
            .session(device_id, module_id)
            .filter(|s| s.subscriptions.methods.load(Ordering::Acquire))
            .ok_or(MethodError::NotOnline)?;
        let rid = format!("{:x}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let (tx, rx) = oneshot::channel();
        self.calls
            .insert(rid.clone(), ((device_id.into(), module_id.into()), tx));
        let _guard = CallGuard {
            live: self,
            rid: rid.clone(),
        };
        let sent = session
            .tx
            .send(Outbound::Publish {
                topic: super::topics::method_request(method, &rid),
                payload,
            })
            .await;
        if sent.is_err() {
            return Err(MethodError::NotOnline);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            // The session ended before answering: the call can no longer be answered.
            Ok(Err(_)) => Err(MethodError::NotOnline),
            Err(_) => Err(MethodError::Timeout),
        }
    }

    /// A device's answer to a call; unknown or late answers, and answers to calls made to
    /// another identity, are dropped.
    pub fn answer(
        &self,
        device_id: &str,
        module_id: &str,
        rid: &str,
        status: i32,
        payload: Bytes,
    ) -> bool {
        let ours = |_: &String, v: &(Key, oneshot::Sender<(i32, Bytes)>)| {
            v.0 .0 == device_id && v.0 .1 == module_id
        };
        match self.calls.remove_if(rid, ours) {
            Some((_, (_, tx))) => tx.send((status, payload)).is_ok(),
            None => false,
        }
    }

    /// Sends `payload` on `topic` to the identity if it subscribed (`wanted` says to what).
    pub fn notify(
        &self,
        device_id: &str,
        module_id: &str,
        wanted: impl Fn(&Subscriptions) -> bool,
        topic: String,
        payload: Bytes,
    ) -> bool {
        match self.session(device_id, module_id) {
            Some(s) if wanted(&s.subscriptions) => {
                s.tx.try_send(Outbound::Publish { topic, payload }).is_ok()
            }
            _ => false,
        }
    }

    pub fn connected(&self) -> usize {
        self.sessions.len()
    }
}
