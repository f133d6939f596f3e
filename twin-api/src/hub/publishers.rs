//! Module identities as publishers: an identity that reports `__type__ = "OpcPublisher"` (as
//! OPC Publisher does) is listed in `/registry/v2/publishers` under Azure Industrial IoT's
//! publisher id `{deviceId}_module_{moduleId}`, online while it is connected, and the twin
//! API's operations reach it by direct method (`{Operation}_V2`, OPC Publisher's names) rather
//! than over the broker.

use std::sync::Arc;

use iiot_api::{ModuleConnectionState, ModuleStateModel};
use serde_json::Value;

use crate::liveness::LivenessTable;
use crate::registry::Registry;

use super::identity::Identity;

/// What marks a route as "through the hub" (`{prefix}{deviceId}/{moduleId}`) where broker
/// routes carry a topic root.
pub const ROOT_PREFIX: &str = "iothub:";

/// The publisher id of an identity, as Azure Industrial IoT names OPC Publisher modules.
pub fn publisher_id(device_id: &str, module_id: &str) -> String {
    if module_id.is_empty() {
        device_id.to_string()
    } else {
        format!("{device_id}_module_{module_id}")
    }
}

/// The route root of an identity.
pub fn root(device_id: &str, module_id: &str) -> String {
    format!("{ROOT_PREFIX}{device_id}/{module_id}")
}

/// The identity a route root names, when it is a hub route.
pub fn identity_of(root: &str) -> Option<(&str, &str)> {
    root.strip_prefix(ROOT_PREFIX)?.split_once('/')
}

/// Whether an identity reports itself as OPC Publisher.
pub fn is_publisher(i: &Identity) -> bool {
    i.twin
        .reported
        .props
        .get("__type__")
        .and_then(Value::as_str)
        == Some("OpcPublisher")
}

/// The registry and liveness the publishers view feeds.
pub struct PublisherLink {
    pub liveness: Arc<LivenessTable>,
    pub registry: Arc<Registry>,
    /// Learns the telemetry pattern the module reports (`__telemetryTopic__`).
    pub rpc: Arc<crate::rpc::MqttRpc>,
}

impl PublisherLink {
    /// Records a publisher identity's connection state and makes sure it is registered.
    pub async fn seen(&self, i: &Identity, online: bool) {
        let id = publisher_id(&i.device_id, &i.module_id);
        let root = root(&i.device_id, &i.module_id);
        let state = ModuleStateModel {
            state: if online {
                ModuleConnectionState::Online
            } else {
                ModuleConnectionState::Offline
            },
            publisher_id: id.clone(),
            root_topic: root.clone(),
            version: i
                .twin
                .reported
                .props
                .get("__version__")
                .and_then(Value::as_str)
                .map(str::to_string),
            connected_time: Some(i.connection_updated.clone()),
            last_activity_time: Some(crate::registry::now()),
            heartbeat_interval: None,
            telemetry_topic: None,
        };
        self.liveness.apply(&root, &state);
        if let Some(p) = i
            .twin
            .reported
            .props
            .get("__telemetryTopic__")
            .and_then(Value::as_str)
        {
            self.rpc.learn_pattern(&root, Some(p));
        }
        if let Err(e) = self.registry.publisher_seen(&id, &root).await {
            tracing::warn!(publisher = %id, error = %e, "hub: registering a publisher failed");
        }
    }
}
