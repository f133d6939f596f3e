//! `GET /events/v2/telemetry/{endpointId}`: the telemetry of an endpoint as Server-Sent
//! Events (in place of Azure's SignalR hub). The module's telemetry topics (the pattern its
//! state message announces, OPC Publisher's default otherwise) are subscribed while at least
//! one client watches.
//!
//! Samples messages carry each value's `EndpointUrl`, so only that endpoint's values are sent.
//! PubSub network messages do not name their endpoint: a watch asks the module for its
//! configuration (`GetConfiguredEndpoints`) when it starts and every 10 s while it runs, and
//! sends only the data set messages whose writer group (read from the topic) and
//! `DataSetWriterName` belong to an entry of this endpoint's URL (any case, trailing `/`
//! ignored). Until the configuration is known, PubSub messages are held back rather than
//! sent whole. A (group, writer) pair configured for two endpoint URLs cannot be told apart
//! on the wire (OPC Publisher has the same ambiguity), so its messages go to watchers of both.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use iiot_api::writer_group::{default_group_url, UNKNOWN_WRITER};
use iiot_api::Operation;
use iiot_api::{GetConfiguredEndpointsResponseModel, PublishedNodesEntryModel};
use iiot_auth::{Principal, Role};
use serde_json::Value;
use tokio::sync::broadcast;
use tracing::debug;

use super::AppState;
use crate::error::ApiError;
use crate::ids::validate_id;
use crate::query::normalized_url;
use crate::rpc::{Telemetry, TelemetryLease};
use crate::store::{ENDPOINT, PUBLISHER};

/// How often a running watch re-reads the module's configuration, so writers published or
/// removed at run time are followed.
const REFRESH: Duration = Duration::from_secs(10);
/// Retry sooner while the configuration could not be read at all.
const RETRY: Duration = Duration::from_secs(2);

/// The data set writers the module publishes for one endpoint URL.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Writers {
    /// (group, writer id) of entries naming their group.
    named: HashSet<(String, String)>,
    /// (endpoint URL as configured, writer id) of entries without a group: the module names
    /// their group `{url}_{8 hex digits of a hash}`, and the hash also covers the user, which
    /// the (sealed) configuration does not show; the URL part is enough to tie it here.
    unnamed: HashSet<(String, String)>,
}

impl Writers {
    /// The writers of the entries whose URL is `url`.
    pub fn of(entries: &[PublishedNodesEntryModel], url: &str) -> Self {
        let want = normalized_url(url);
        let mut w = Writers::default();
        for e in entries
            .iter()
            .filter(|e| normalized_url(&e.endpoint_url) == want)
        {
            let id = e
                .data_set_writer_id
                .clone()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| UNKNOWN_WRITER.into());
            match e.data_set_writer_group.clone().filter(|g| !g.is_empty()) {
                Some(group) => w.named.insert((group, id)),
                None => w.unnamed.insert((e.endpoint_url.trim().to_string(), id)),
            };
        }
        w
    }

    /// Whether (group, writer) is one of these writers. An empty group (the module's topic
    /// template names none) matches the writer in any group.
    fn contains(&self, group: &str, writer: &str) -> bool {
        if group.is_empty() {
            return self.named.iter().any(|(_, w)| w == writer)
                || self.unnamed.iter().any(|(_, w)| w == writer);
        }
        if self
            .named
            .contains(&(group.to_string(), writer.to_string()))
        {
            return true;
        }
        default_group_url(group).is_some_and(|url| {
            self.unnamed
                .contains(&(url.to_string(), writer.to_string()))
        })
    }
}

fn matches(v: &Value, url: &str) -> bool {
    v.get("EndpointUrl")
        .and_then(Value::as_str)
        .is_some_and(|u| normalized_url(u) == normalized_url(url))
}

fn is_network_message(v: &Value) -> bool {
    v.get("MessageType").and_then(Value::as_str) == Some("ua-data")
}

/// The network message with only this endpoint's data set messages; `None` when none remain
/// or the writers are not known yet.
fn network_message(mut v: Value, group: &str, writers: Option<&Writers>) -> Option<Value> {
    let writers = writers?;
    let messages = v.get_mut("Messages")?.as_array_mut()?;
    messages.retain(|m| {
        let name = m
            .get("DataSetWriterName")
            .and_then(Value::as_str)
            .unwrap_or(UNKNOWN_WRITER);
        writers.contains(group, name)
    });
    (!messages.is_empty()).then_some(v)
}

/// What of one telemetry message (published under `{root}/messages/{group}`) goes to a
/// watcher of `url`, given the module's writers for that URL (`None`: not known yet).
pub fn select(payload: &[u8], group: &str, url: &str, writers: Option<&Writers>) -> Option<String> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let kept = match v {
        Value::Array(items) => {
            let items: Vec<Value> = items
                .into_iter()
                .filter_map(|i| {
                    if is_network_message(&i) {
                        network_message(i, group, writers)
                    } else {
                        matches(&i, url).then_some(i)
                    }
                })
                .collect();
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
        Value::Object(_) if is_network_message(&v) => network_message(v, group, writers)?,
        _ => return None,
    };
    Some(kept.to_string())
}

/// Reads the module's configuration and keeps the writers of `url`.
async fn configured_writers(s: &AppState, owner: &str, url: &str) -> Result<Writers, ApiError> {
    let (module, root) = s.registry.usable_module(owner).await?;
    let body = serde_json::to_vec(&serde_json::json!({ "includeNodes": false }))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let answer = s
        .rpc
        .call(
            &module,
            &root,
            Operation::GetConfiguredEndpoints,
            body,
            s.request_timeout,
        )
        .await?;
    let config: GetConfiguredEndpointsResponseModel =
        serde_json::from_slice(&answer).map_err(|e| {
            ApiError::Internal(format!("module answered GetConfiguredEndpoints with {e}"))
        })?;
    Ok(Writers::of(&config.endpoints, url))
}

/// Stops the refresh task with the stream that owns it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
    // The first configuration before the first event, so a watch starts filtered.
    let writers = Arc::new(RwLock::new(None));
    let mut first_ok = false;
    match configured_writers(&s, &ep.owner, &url).await {
        Ok(w) => {
            first_ok = true;
            if let Ok(mut slot) = writers.write() {
                *slot = Some(w);
            }
        }
        Err(e) => debug!(endpoint = %endpoint_id, error = %e, "module configuration not read yet"),
    }
    let refresh = {
        let (s, owner, url, writers) = (s.clone(), ep.owner.clone(), url.clone(), writers.clone());
        tokio::spawn(async move {
            let mut wait = if first_ok { REFRESH } else { RETRY };
            loop {
                tokio::time::sleep(wait).await;
                wait = match configured_writers(&s, &owner, &url).await {
                    Ok(w) => {
                        if let Ok(mut slot) = writers.write() {
                            *slot = Some(w);
                        }
                        REFRESH
                    }
                    Err(e) => {
                        debug!(%owner, error = %e, "module configuration not read; keeping the last");
                        RETRY
                    }
                };
            }
        })
    };
    struct Watch {
        rx: broadcast::Receiver<Telemetry>,
        url: String,
        writers: Arc<RwLock<Option<Writers>>>,
        _refresh: AbortOnDrop,
        _lease: TelemetryLease,
    }
    let state = Watch {
        rx,
        url,
        writers,
        _refresh: AbortOnDrop(refresh),
        _lease: lease,
    };
    let stream = futures::stream::unfold(state, |mut w| async move {
        loop {
            match w.rx.recv().await {
                Ok((group, payload)) => {
                    let data = {
                        let writers = w.writers.read().ok();
                        select(
                            &payload,
                            &group,
                            &w.url,
                            writers.as_ref().and_then(|g| g.as_ref()),
                        )
                    };
                    if let Some(data) = data {
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

    fn entry(url: &str, group: Option<&str>, writer: Option<&str>) -> PublishedNodesEntryModel {
        PublishedNodesEntryModel {
            endpoint_url: url.into(),
            data_set_writer_group: group.map(String::from),
            data_set_writer_id: writer.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn samples_are_filtered_by_endpoint() {
        let msg = br#"[{"NodeId":"a","EndpointUrl":"opc.tcp://h:1/","Value":{"Value":1}},
                       {"NodeId":"b","EndpointUrl":"opc.tcp://other:1","Value":{"Value":2}}]"#;
        let kept: Value =
            serde_json::from_str(&select(msg, "g", "opc.tcp://H:1", None).unwrap()).unwrap();
        assert_eq!(kept.as_array().unwrap().len(), 1);
        assert_eq!(kept[0]["NodeId"], "a");
        assert!(select(msg, "g", "opc.tcp://none:1", None).is_none());
        let single = br#"{"NodeId":"a","EndpointUrl":"opc.tcp://h:1"}"#;
        assert!(select(single, "g", "opc.tcp://h:1", None).is_some());
        assert!(select(b"not json", "g", "opc.tcp://h:1", None).is_none());
    }

    #[test]
    fn pubsub_data_sets_are_filtered_by_configured_writer() {
        let url = "opc.tcp://plc:50000";
        let entries = [
            entry("OPC.TCP://plc:50000/", Some("line1"), Some("fast")),
            entry(url, None, None),
            entry("opc.tcp://other:1", Some("line1"), Some("slow")),
            // Same (group, writer) on two URLs: ambiguous, goes to both.
            entry("opc.tcp://other:1", Some("shared"), Some("w")),
            entry(url, Some("shared"), Some("w")),
        ];
        let writers = Writers::of(&entries, url);
        let other = Writers::of(&entries, "opc.tcp://other:1/");
        let msg = br#"{"MessageId":"1","MessageType":"ua-data","PublisherId":"p","Messages":[
            {"DataSetWriterName":"fast","Payload":{"a":1}},
            {"DataSetWriterName":"slow","Payload":{"b":2}}]}"#;
        let kept: Value =
            serde_json::from_str(&select(msg, "line1", url, Some(&writers)).unwrap()).unwrap();
        let names: Vec<_> = kept["Messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["DataSetWriterName"].clone())
            .collect();
        assert_eq!(names, ["fast"]);
        assert_eq!(kept["PublisherId"], "p");
        let kept: Value =
            serde_json::from_str(&select(msg, "line1", "opc.tcp://other:1", Some(&other)).unwrap())
                .unwrap();
        assert_eq!(kept["Messages"][0]["DataSetWriterName"], "slow");
        assert_eq!(kept["Messages"].as_array().unwrap().len(), 1);
        // Another group: nothing of it is ours.
        assert!(select(msg, "line2", url, Some(&writers)).is_none());
        // Not known yet: held back, not sent whole.
        assert!(select(msg, "line1", url, None).is_none());

        // An entry without group or writer: the module's `{url}_{hash}` group and
        // `<<UnknownDataSet>>`.
        let unnamed =
            br#"{"MessageType":"ua-data","Messages":[{"DataSetWriterName":"<<UnknownDataSet>>"}]}"#;
        let group = format!("{url}_0a1b2c3d");
        assert!(select(unnamed, &group, url, Some(&writers)).is_some());
        assert!(select(unnamed, "opc.tcp://other:1_0a1b2c3d", url, Some(&writers)).is_none());
        assert!(select(unnamed, &group, "opc.tcp://other:1", Some(&other)).is_none());

        let shared = br#"{"MessageType":"ua-data","Messages":[{"DataSetWriterName":"w"}]}"#;
        assert!(select(shared, "shared", url, Some(&writers)).is_some());
        assert!(select(shared, "shared", "opc.tcp://other:1", Some(&other)).is_some());

        // An array of network messages is filtered message by message.
        let batch = format!(
            "[{},{}]",
            String::from_utf8_lossy(msg),
            r#"{"MessageType":"ua-data","Messages":[{"DataSetWriterName":"slow"}]}"#
        );
        let kept: Value =
            serde_json::from_str(&select(batch.as_bytes(), "line1", url, Some(&writers)).unwrap())
                .unwrap();
        assert_eq!(kept.as_array().unwrap().len(), 1);
    }
}
