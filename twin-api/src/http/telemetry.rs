//! `GET /events/v2/telemetry/{endpointId}`: the telemetry of an endpoint as Server-Sent
//! Events (in place of Azure's SignalR hub). The module's `{root}/messages/#` is subscribed
//! while at least one client watches.
//!
//! Samples messages carry each value's `EndpointUrl`, so only that endpoint's values are sent.
//! PubSub network messages do not name their endpoint: they are sent whole (every data set
//! of the module that serves the endpoint).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::Stream;
use iiot_auth::{Principal, Role};
use serde_json::Value;
use tokio::sync::broadcast;

use super::AppState;
use crate::error::ApiError;
use crate::ids::validate_id;
use crate::rpc::TelemetryLease;
use crate::store::{ENDPOINT, PUBLISHER};

fn matches(v: &Value, url: &str) -> bool {
    v.get("EndpointUrl")
        .and_then(Value::as_str)
        .is_some_and(|u| {
            u.trim_end_matches('/')
                .eq_ignore_ascii_case(url.trim_end_matches('/'))
        })
}

/// What of one telemetry message goes to a watcher of `url`.
pub fn select(payload: &[u8], url: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let kept = match v {
        Value::Array(items) => {
            let items: Vec<Value> = items.into_iter().filter(|i| matches(i, url)).collect();
            if items.is_empty() {
                return None;
            }
            Value::Array(items)
        }
        Value::Object(ref o) if o.contains_key("EndpointUrl") => {
            if !matches(&v, url) {
                return None;
            }
            v
        }
        Value::Object(ref o) if o.get("MessageType").and_then(Value::as_str) == Some("ua-data") => {
            v
        }
        _ => return None,
    };
    Some(kept.to_string())
}

#[utoipa::path(
    get,
    path = "/events/v2/telemetry/{endpointId}",
    tag = "Events",
    summary = "Stream the endpoint's telemetry as Server-Sent Events (event `telemetry`)",
    params(("endpointId" = String, Path)),
    responses(
        (status = 200, description = "text/event-stream", body = String),
        (status = "4XX", description = "problem+json", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(super) async fn telemetry(
    State(s): State<AppState>,
    p: Principal,
    Path(endpoint_id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    p.require(Role::Reader)?;
    validate_id(&endpoint_id)?;
    let ep = s
        .registry
        .store
        .get(ENDPOINT, &endpoint_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no endpoint '{endpoint_id}'")))?;
    let url = ep.body["registration"]["endpoint"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let root = match s.registry.liveness.get(&ep.owner) {
        Some(l) => l.root_topic,
        None => s
            .registry
            .store
            .get(PUBLISHER, &ep.owner)
            .await?
            .and_then(|r| {
                r.body
                    .get("rootTopic")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .unwrap_or_else(|| ep.owner.clone()),
    };
    let (rx, lease) = s.rpc.watch_telemetry(&root);
    struct Watch {
        rx: broadcast::Receiver<Bytes>,
        url: String,
        _lease: TelemetryLease,
    }
    let state = Watch {
        rx,
        url,
        _lease: lease,
    };
    let stream = futures::stream::unfold(state, |mut w| async move {
        loop {
            match w.rx.recv().await {
                Ok(payload) => {
                    if let Some(data) = select(&payload, &w.url) {
                        let event = Event::default().event("telemetry").data(data);
                        return Some((Ok(event), w));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let event = Event::default().event("lagged").data(n.to_string());
                    return Some((Ok(event), w));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/events/v2/telemetry/{endpointId}", get(telemetry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_filtered_by_endpoint() {
        let msg = br#"[{"NodeId":"a","EndpointUrl":"opc.tcp://h:1/","Value":{"Value":1}},
                       {"NodeId":"b","EndpointUrl":"opc.tcp://other:1","Value":{"Value":2}}]"#;
        let kept: Value = serde_json::from_str(&select(msg, "opc.tcp://H:1").unwrap()).unwrap();
        assert_eq!(kept.as_array().unwrap().len(), 1);
        assert_eq!(kept[0]["NodeId"], "a");
        assert!(select(msg, "opc.tcp://none:1").is_none());
        let single = br#"{"NodeId":"a","EndpointUrl":"opc.tcp://h:1"}"#;
        assert!(select(single, "opc.tcp://h:1").is_some());
        let pubsub = br#"{"MessageId":"1","MessageType":"ua-data","Messages":[]}"#;
        assert!(select(pubsub, "opc.tcp://h:1").is_some());
        assert!(select(b"not json", "opc.tcp://h:1").is_none());
    }
}
