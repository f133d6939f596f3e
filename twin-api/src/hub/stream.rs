//! `GET /events/v2/hub/messages`: device-to-cloud messages as Server-Sent Events, the hub's
//! first route (in place of IoT Hub's Event Hubs-compatible endpoint).
//!
//! Each event's id is the message id, so a consumer that reconnects with `Last-Event-ID`
//! (or `?after=`) gets every stored message it missed, then the live ones: delivery is at
//! least once for as long as messages are retained. `deviceId` and `moduleId` narrow it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast;

use super::error::HubError;
use super::http::HubState;
use super::messages::{new_id, Message, Messages};
use super::store::Right;

/// Messages read from the store per query while catching up.
const REPLAY_PAGE: usize = 500;

struct Cursor {
    messages: Messages,
    live: broadcast::Receiver<Message>,
    /// Id of the last message sent; `None` before the first, when only live ones are wanted.
    last: Option<String>,
    pending: std::collections::VecDeque<Message>,
    device: Option<String>,
    module: Option<String>,
    /// Whether the store has been read up to the live stream.
    caught_up: bool,
    /// Turns true when the hub stops: streams end so the server can.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Cursor {
    fn wanted(&self, m: &Message) -> bool {
        self.device.as_deref().is_none_or(|d| d == m.device_id)
            && self.module.as_deref().is_none_or(|x| x == m.module_id)
            && self.last.as_deref().is_none_or(|l| m.id.as_str() > l)
    }

    async fn next(&mut self) -> Option<Message> {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            m = self.next_message() => m,
            _ = stopping.wait_for(|s| *s) => None,
        }
    }

    async fn next_message(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                if self.wanted(&m) {
                    self.last = Some(m.id.clone());
                    return Some(m);
                }
                continue;
            }
            if !self.caught_up {
                let after = self.last.clone().unwrap_or_default();
                match self.messages.after(&after, REPLAY_PAGE).await {
                    Ok(page) => {
                        if page.len() < REPLAY_PAGE {
                            self.caught_up = true;
                        }
                        if page.is_empty() {
                            continue;
                        }
                        // Skip what the filter drops without losing the position.
                        if let Some(last) = page.last() {
                            let last_id = last.id.clone();
                            self.pending.extend(page);
                            if self.pending.iter().all(|m| !self.wanted(m)) {
                                self.pending.clear();
                                self.last = Some(last_id);
                            }
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "hub stream: reading stored messages failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            match self.live.recv().await {
                Ok(m) => self.pending.push_back(m),
                // Fell behind the live stream: read the gap from the store.
                Err(broadcast::error::RecvError::Lagged(_)) => self.caught_up = false,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

pub async fn messages(
    State(s): State<HubState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, HubError> {
    if s.authorize(&headers, &uri, Right::RegistryRead).is_err() {
        s.authorize(&headers, &uri, Right::ServiceConnect)?;
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("after").cloned());
    if let Some(r) = &resume {
        if r.len() > 64 || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(HubError::Argument(
                "Last-Event-ID / after must be an event id this stream sent".into(),
            ));
        }
    }
    let live = s.hub.messages.subscribe();
    let cursor = Cursor {
        messages: s.hub.messages.clone(),
        live,
        // Without a position, only what arrives from now on (also after falling behind).
        caught_up: resume.is_none(),
        last: Some(resume.unwrap_or_else(|| new_id(time::OffsetDateTime::now_utc()))),
        stopping: s.hub.messages.stopping(),
        pending: Default::default(),
        device: q.get("deviceId").cloned(),
        module: q.get("moduleId").cloned(),
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        let m = c.next().await?;
        let event = Event::default()
            .id(m.id.clone())
            .event("message")
            .data(m.to_event().to_string());
        Some((Ok(event), c))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
