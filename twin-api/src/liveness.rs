//! What twin-api knows of each module's connection, from the retained state messages and
//! heartbeats on `{root}/state` (never from polling). Kept in memory: every replica subscribes
//! to the same retained messages, so each one knows the same without sharing a table, and the
//! identity record's etag does not change with every heartbeat.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use iiot_api::{ModuleConnectionState, ModuleStateModel};
use serde_json::{json, Value};

/// A module silent for this many heartbeat intervals counts as offline, even before its
/// broker publishes the last will.
const MISSED_HEARTBEATS: u32 = 3;

#[derive(Debug, Clone)]
pub struct ModuleLiveness {
    pub online: bool,
    pub root_topic: String,
    pub version: Option<String>,
    pub last_activity_time: Option<String>,
    pub heartbeat: Option<Duration>,
    received: Instant,
}

impl ModuleLiveness {
    /// Online and heard from within the allowed number of heartbeats.
    pub fn is_online(&self) -> bool {
        self.online
            && self.heartbeat.is_none_or(|h| {
                self.received.elapsed() <= h * MISSED_HEARTBEATS + Duration::from_secs(2)
            })
    }
}

/// Module id → its last known state.
#[derive(Debug, Default)]
pub struct LivenessTable {
    modules: DashMap<String, ModuleLiveness>,
}

impl LivenessTable {
    /// Applies a state message; returns whether the module went from online to offline.
    pub fn apply(&self, root: &str, m: &ModuleStateModel) -> bool {
        let online = m.state == ModuleConnectionState::Online;
        let id = if m.publisher_id.is_empty() {
            root
        } else {
            &m.publisher_id
        };
        let mut entry = self
            .modules
            .entry(id.to_string())
            .or_insert_with(|| ModuleLiveness {
                online: false,
                root_topic: root.to_string(),
                version: None,
                last_activity_time: None,
                heartbeat: None,
                received: Instant::now(),
            });
        let was_online = entry.online;
        entry.online = online;
        entry.root_topic = root.to_string();
        entry.received = Instant::now();
        if m.version.is_some() {
            entry.version = m.version.clone();
        }
        entry.heartbeat = m.heartbeat_interval.map(Duration::from_secs);
        // The last will's time is that of the connect: keep the newer heartbeat time.
        if online || entry.last_activity_time.is_none() {
            entry.last_activity_time = m.last_activity_time.clone();
        }
        was_online && !online
    }

    pub fn get(&self, id: &str) -> Option<ModuleLiveness> {
        self.modules.get(id).map(|e| e.clone())
    }

    /// Ids of the modules online now.
    pub fn online(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .modules
            .iter()
            .filter(|e| e.is_online())
            .map(|e| e.key().clone())
            .collect();
        ids.sort();
        ids
    }

    /// The connection fields a publisher record shows.
    pub fn fields(&self, id: &str) -> Value {
        match self.get(id) {
            Some(l) => json!({
                "connected": l.is_online(),
                "connectionState": if l.is_online() { "Connected" } else { "Disconnected" },
                "lastActivityTime": l.last_activity_time,
                "version": l.version,
                "rootTopic": l.root_topic,
            }),
            None => json!({ "connected": false, "connectionState": "Disconnected" }),
        }
    }
}
