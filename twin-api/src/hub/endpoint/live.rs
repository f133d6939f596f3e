//! The identities connected to this hub right now, and the direct-method calls waiting for
//! their answers: what the service routes use to reach a device at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot, watch};

use super::codec::Goodbye;

/// What a session is asked to send.
#[derive(Debug)]
pub struct Outbound {
    pub topic: String,
    pub payload: Bytes,
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

impl Subscriptions {
    fn flags(&self) -> [&AtomicBool; 5] {
        [
            &self.twin_responses,
            &self.desired,
            &self.methods,
            &self.cloud_to_device,
            &self.inputs,
        ]
    }

    /// As stored with the identity (one bit each).
    pub fn bits(&self) -> u8 {
        self.flags()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.load(Ordering::Acquire))
            .fold(0, |b, (i, _)| b | (1 << i))
    }

    pub fn from_bits(bits: u8) -> Self {
        let s = Self::default();
        for (i, f) in s.flags().iter().enumerate() {
            f.store(bits & (1 << i) != 0, Ordering::Release);
        }
        s
    }
}

/// One live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: u64,
    /// Unique across replicas and restarts: recorded with the identity while connected.
    pub connection_id: String,
    /// Boxed: a channel keeps a block of slots per session from the start, and what a
    /// session is sent is rare (calls, patches) next to how many sessions wait idle.
    pub tx: mpsc::Sender<Box<Outbound>>,
    /// Set to end the session (a take-over, a disabled or deleted identity); apart from the
    /// data queue so a full queue cannot swallow it.
    pub close: watch::Sender<Option<Goodbye>>,
    pub subscriptions: Arc<Subscriptions>,
    /// Told when a delivery (cloud-to-device message, module input) waits for the identity.
    pub deliveries: Arc<tokio::sync::Notify>,
    pub opened: std::time::Instant,
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
type Waiting = (Key, oneshot::Sender<(i32, Bytes)>);

pub struct Live {
    instance: String,
    sessions: DashMap<Key, Session>,
    /// Waiting calls by `$rid`, with the identity that must answer them.
    calls: DashMap<String, Waiting>,
    next: AtomicU64,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            sessions: DashMap::new(),
            calls: DashMap::new(),
            next: AtomicU64::new(0),
        }
    }
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
    /// Registers a new session for an identity with the subscriptions it keeps; the session
    /// it replaces (if any) is told to close (a second connection takes over, as in IoT Hub).
    pub fn register(
        &self,
        device_id: &str,
        module_id: &str,
        tx: mpsc::Sender<Box<Outbound>>,
        subscriptions: u8,
    ) -> (Session, watch::Receiver<Option<Goodbye>>) {
        let (close, closed) = watch::channel(None);
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session {
            id,
            connection_id: format!("{}-{id}", self.instance),
            tx,
            close,
            subscriptions: Arc::new(Subscriptions::from_bits(subscriptions)),
            deliveries: Arc::new(tokio::sync::Notify::new()),
            opened: std::time::Instant::now(),
        };
        if let Some(old) = self
            .sessions
            .insert((device_id.into(), module_id.into()), session.clone())
        {
            let _ = old.close.send(Some(Goodbye::TakenOver));
        }
        (session, closed)
    }

    /// Forgets the session `id` unless another took its place already, and fails the calls
    /// waiting on it at once (they could no longer be answered).
    pub fn unregister(&self, device_id: &str, module_id: &str, id: u64) {
        let key: Key = (device_id.into(), module_id.into());
        if self.sessions.remove_if(&key, |_, s| s.id == id).is_some() {
            self.calls.retain(|_, (k, _)| *k != key);
        }
    }

    pub fn session(&self, device_id: &str, module_id: &str) -> Option<Session> {
        self.sessions
            .get(&(device_id.to_string(), module_id.to_string()))
            .map(|s| s.clone())
    }

    /// Ends the session of an identity (deleted, or its credential changed).
    pub fn close(&self, device_id: &str, module_id: &str) {
        if let Some(s) = self.session(device_id, module_id) {
            let _ = s.close.send(Some(Goodbye::NotAuthorized));
        }
    }

    /// Ends connection `connection_id` of an identity if it is still the live one (another
    /// replica's take-over must not end a session that connected here since).
    pub fn close_connection(
        &self,
        device_id: &str,
        module_id: &str,
        connection_id: &str,
        taken_over: bool,
    ) {
        if let Some(s) = self
            .session(device_id, module_id)
            .filter(|s| s.connection_id == connection_id)
        {
            let why = if taken_over {
                Goodbye::TakenOver
            } else {
                Goodbye::NotAuthorized
            };
            let _ = s.close.send(Some(why));
        }
    }

    /// Ends every session of a device, its modules' included.
    pub fn close_device(&self, device_id: &str) {
        for s in self.sessions.iter().filter(|e| e.key().0 == device_id) {
            let _ = s.close.send(Some(Goodbye::NotAuthorized));
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
        let deadline = tokio::time::Instant::now() + timeout;
        let request = Box::new(Outbound {
            topic: super::topics::method_request(method, &rid),
            payload,
        });
        // A device that reads nothing fills its queue: the call then times out, it does not
        // hang.
        match tokio::time::timeout_at(deadline, session.tx.send(request)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(MethodError::NotOnline),
            Err(_) => return Err(MethodError::Timeout),
        }
        match tokio::time::timeout_at(deadline, rx).await {
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
        let ours = |_: &String, v: &Waiting| v.0 .0 == device_id && v.0 .1 == module_id;
        match self.calls.remove_if(rid, ours) {
            Some((_, (_, tx))) => tx.send((status, payload)).is_ok(),
            None => false,
        }
    }

    /// Sends `payload` on `topic` to the identity if it subscribed (`wanted` says to what).
    /// A session whose queue is full is closed instead: the device catches up when it
    /// reconnects (the SDKs GET the twin again), rather than silently missing a patch.
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
                match s.tx.try_send(Box::new(Outbound { topic, payload })) {
                    Ok(()) => true,
                    Err(_) => {
                        let _ = s.close.send(Some(Goodbye::ShuttingDown));
                        false
                    }
                }
            }
            _ => false,
        }
    }

    /// Tells the identity's session, if it has one here, that a delivery waits.
    pub fn wake_deliveries(&self, device_id: &str, module_id: &str) -> bool {
        match self.session(device_id, module_id) {
            Some(s) => {
                s.deliveries.notify_one();
                true
            }
            None => false,
        }
    }

    /// `(device, module, connection, subscribed to desired patches)` of every session open
    /// for at least `age` (younger ones may not have recorded their connection yet).
    pub fn sessions(&self, age: Duration) -> Vec<(String, String, String, bool)> {
        self.sessions
            .iter()
            .filter(|e| e.value().opened.elapsed() >= age)
            .map(|e| {
                let (d, m) = e.key();
                let s = e.value();
                (
                    d.clone(),
                    m.clone(),
                    s.connection_id.clone(),
                    s.subscriptions.desired.load(Ordering::Acquire),
                )
            })
            .collect()
    }

    /// This replica's id: the prefix of its connection ids.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn connected(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_round_trip_through_their_bits() {
        let s = Subscriptions::default();
        s.desired.store(true, Ordering::Release);
        s.inputs.store(true, Ordering::Release);
        let b = s.bits();
        assert_eq!(b, 0b10010);
        let t = Subscriptions::from_bits(b);
        assert!(t.desired.load(Ordering::Acquire) && t.inputs.load(Ordering::Acquire));
        assert!(!t.methods.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn a_call_to_a_session_that_ends_fails_at_once() {
        let live = Arc::new(Live::default());
        let (tx, mut rx) = mpsc::channel(4);
        let (session, _closed) = live.register("d", "", tx, 0b100);
        let l = live.clone();
        let call = tokio::spawn(async move {
            l.invoke("d", "", "m", Bytes::new(), Duration::from_secs(30))
                .await
        });
        assert!(rx.recv().await.is_some());
        live.unregister("d", "", session.id);
        let r = tokio::time::timeout(Duration::from_secs(2), call)
            .await
            .expect("no 30 s wait")
            .unwrap();
        assert_eq!(r, Err(MethodError::NotOnline));
        // A take-over tells the old session to close.
        let (tx, _rx) = mpsc::channel(4);
        let (_first, mut first_closed) = live.register("d", "", tx.clone(), 0);
        let _second = live.register("d", "", tx, 0);
        first_closed.changed().await.unwrap();
        assert_eq!(*first_closed.borrow(), Some(Goodbye::TakenOver));
    }
}
