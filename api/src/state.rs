//! The module's liveness state, published retained on `{root}/state` (DESIGN flow 4).
//!
//! One message shape serves three purposes: the `online` announcement on connect, the periodic
//! heartbeat (the same message again with a fresh `lastActivityTime`), and the MQTT last-will
//! `offline` message the broker publishes when the module's connection dies.

use serde::{Deserialize, Serialize};

/// `$$MessageSchema` user property of a state message.
pub const MODULE_STATE_SCHEMA: &str = "application/x-module-state-v1-json";

string_enum! {
    #[derive(Default)]
    pub enum ModuleConnectionState {
        #[default]
        Offline = 0,
        Online = 1,
    }
}

/// A module's retained state message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModuleStateModel {
    /// `Online` on connect and in heartbeats, `Offline` in the last will and on clean stop.
    pub state: ModuleConnectionState,
    /// The publisher id (also the module id and discoverer id).
    pub publisher_id: String,
    /// The `{root}` the module answers methods on.
    pub root_topic: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    /// When this connection of the module started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub connected_time: Option<String>,
    /// When the message was written (RFC 3339); the heartbeat moves it forward. In the last
    /// will it is the connect time, since the will is fixed when the connection opens.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_activity_time: Option<String>,
    /// Seconds between heartbeats: a consumer may treat a module silent for three intervals
    /// as offline even before its broker publishes the will.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub heartbeat_interval: Option<u64>,
    /// The telemetry topic pattern this module publishes under (see
    /// [`crate::topics::TelemetryPattern`]), so consumers follow `--ttt` rather than assume
    /// the default. Absent from modules that predate it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub telemetry_topic: Option<String>,
}
