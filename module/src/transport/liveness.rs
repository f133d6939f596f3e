//! The module's liveness on `{root}/state` (DESIGN flow 4, the heartbeat pattern).
//!
//! Contract: every message on `{root}/state` is a retained, QoS 1 [`ModuleStateModel`] in JSON
//! with the `$$MessageSchema` user property [`MODULE_STATE_SCHEMA`].
//! - On every connect the module publishes `state: Online` (retained), with its publisher id,
//!   root topic, version, `connectedTime` and `lastActivityTime`.
//! - Every `heartbeat` interval (default 30 s) it publishes the same message again with a new
//!   `lastActivityTime`; one topic, so a late subscriber gets the newest state from the broker.
//! - The connection's MQTT last will is `state: Offline` (retained): the broker publishes it
//!   when the module dies or loses its connection. A clean stop publishes `Offline` itself.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use tracing::warn;

use crate::api::rpc::MESSAGE_SCHEMA_PROPERTY;
use crate::api::state::{ModuleConnectionState, ModuleStateModel, MODULE_STATE_SCHEMA};
use crate::api::topics::{ModuleTopics, TelemetryPattern};

/// Default time between heartbeats.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// Builds and publishes the state messages of one module.
#[derive(Debug, Clone)]
pub struct Liveness {
    root: String,
    heartbeat: Duration,
    started: String,
    telemetry: Option<TelemetryPattern>,
}

fn now() -> String {
    opcua::types::DateTime::now().to_rfc3339()
}

impl Liveness {
    /// `telemetry`: the telemetry pattern to announce, where the module publishes telemetry.
    pub fn new(root: &str, heartbeat: Duration, telemetry: Option<TelemetryPattern>) -> Self {
        Self {
            root: root.to_string(),
            heartbeat: heartbeat.max(Duration::from_secs(1)),
            started: now(),
            telemetry,
        }
    }

    pub fn topic(&self) -> String {
        ModuleTopics::new(self.root.as_str()).state()
    }

    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// The state message; `Online` ones carry the current time as `lastActivityTime`.
    pub fn message(&self, state: ModuleConnectionState) -> ModuleStateModel {
        ModuleStateModel {
            state,
            publisher_id: self.root.clone(),
            root_topic: self.root.clone(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            connected_time: Some(self.started.clone()),
            last_activity_time: Some(now()),
            heartbeat_interval: Some(self.heartbeat.as_secs()),
            telemetry_topic: self.telemetry.as_ref().map(|t| t.as_str().to_string()),
        }
    }

    /// The last will set on the connection: a retained `Offline` state.
    pub fn last_will(&self) -> LastWill {
        let payload =
            serde_json::to_vec(&self.message(ModuleConnectionState::Offline)).unwrap_or_default();
        let props = LastWillProperties {
            delay_interval: None,
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: Some("application/json".into()),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![(MESSAGE_SCHEMA_PROPERTY.into(), MODULE_STATE_SCHEMA.into())],
        };
        LastWill::new(self.topic(), payload, QoS::AtLeastOnce, true, Some(props))
    }

    /// Queues a retained state (the online announcement, a heartbeat or the clean offline).
    /// Never waits: it is called from the task that polls the event loop, which a full
    /// request queue would otherwise deadlock.
    pub fn publish(&self, client: &AsyncClient, state: ModuleConnectionState) {
        let Ok(payload) = serde_json::to_vec(&self.message(state)) else {
            return;
        };
        let props = PublishProperties {
            content_type: Some("application/json".into()),
            user_properties: vec![(MESSAGE_SCHEMA_PROPERTY.into(), MODULE_STATE_SCHEMA.into())],
            ..Default::default()
        };
        if let Err(e) = client.try_publish_with_properties(
            self.topic(),
            QoS::AtLeastOnce,
            true,
            Bytes::from(payload),
            props,
        ) {
            warn!(error = %e, "publishing module state failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn will_is_retained_offline_state() {
        let pattern = TelemetryPattern::new("plant/pub1/{WriterGroup}");
        let l = Liveness::new("pub1", Duration::from_secs(5), Some(pattern));
        let will = l.last_will();
        assert!(will.retain);
        assert_eq!(&will.topic[..], b"pub1/state");
        let m: ModuleStateModel = serde_json::from_slice(&will.message).unwrap();
        assert_eq!(m.state, ModuleConnectionState::Offline);
        assert_eq!(m.publisher_id, "pub1");
        assert_eq!(m.heartbeat_interval, Some(5));
        let online = serde_json::to_value(l.message(ModuleConnectionState::Online)).unwrap();
        assert_eq!(online["state"], "Online");
        assert_eq!(online["rootTopic"], "pub1");
        assert!(online["lastActivityTime"].is_string());
        assert_eq!(online["telemetryTopic"], "plant/pub1/{WriterGroup}");
    }
}
