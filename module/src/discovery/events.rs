//! Publishing discovery progress and results on `{root}/events`.
//!
//! Each message carries OPC Publisher's `$$MessageSchema` user property (progress or event
//! batch schema) so a consumer can tell them apart without parsing. Without a broker, events
//! go to the log only.

use std::collections::BTreeMap;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use serde::Serialize;
use tracing::{debug, warn};

use crate::api::rpc::{
    DISCOVERY_EVENTS_SCHEMA, DISCOVERY_PROGRESS_SCHEMA, MESSAGE_SCHEMA_PROPERTY,
};
use crate::api::{
    ApplicationRegistrationModel, DiscoveryEventModel, DiscoveryProgressModel,
    DiscoveryProgressType, DiscoveryRequestModel, DiscoveryResultModel,
};

/// Where events go.
#[derive(Clone, Default)]
pub struct EventSink {
    mqtt: Option<(AsyncClient, String)>,
}

impl EventSink {
    pub fn mqtt(client: AsyncClient, topic: String) -> Self {
        Self {
            mqtt: Some((client, topic)),
        }
    }

    pub fn log_only() -> Self {
        Self::default()
    }

    pub async fn publish<T: Serialize>(&self, schema: &str, body: &T) {
        let Ok(payload) = serde_json::to_vec(body) else {
            return;
        };
        match &self.mqtt {
            Some((client, topic)) => {
                let props = PublishProperties {
                    content_type: Some("application/json".into()),
                    user_properties: vec![(MESSAGE_SCHEMA_PROPERTY.into(), schema.into())],
                    ..Default::default()
                };
                if let Err(e) = client
                    .publish_with_properties(
                        topic.clone(),
                        QoS::AtLeastOnce,
                        false,
                        Bytes::from(payload),
                        props,
                    )
                    .await
                {
                    warn!(error = %e, "publishing discovery event failed");
                }
            }
            None => debug!(schema, body = %String::from_utf8_lossy(&payload), "discovery event"),
        }
    }
}

fn now() -> String {
    opcua::types::DateTime::now().to_rfc3339()
}

/// One discovery run's reporting.
pub struct Run {
    sink: EventSink,
    request: DiscoveryRequestModel,
    discoverer_id: String,
    started: String,
}

impl Run {
    pub fn new(sink: EventSink, request: DiscoveryRequestModel, discoverer_id: String) -> Self {
        Self {
            sink,
            request,
            discoverer_id,
            started: now(),
        }
    }

    pub fn id(&self) -> &str {
        self.request.id.as_deref().unwrap_or_default()
    }

    fn base(&self, event_type: DiscoveryProgressType) -> DiscoveryProgressModel {
        DiscoveryProgressModel {
            request_id: self.request.id.clone(),
            event_type,
            discoverer_id: Some(self.discoverer_id.clone()),
            time_stamp: now(),
            request: self.request.clone(),
            ..Default::default()
        }
    }

    pub async fn progress(
        &self,
        t: DiscoveryProgressType,
        result: Option<String>,
        discovered: Option<usize>,
    ) {
        let mut m = self.base(t);
        m.result = result;
        m.discovered = discovered.map(clamp);
        self.sink.publish(DISCOVERY_PROGRESS_SCHEMA, &m).await;
    }

    pub async fn progress_counts(
        &self,
        t: DiscoveryProgressType,
        done: usize,
        total: usize,
        found: usize,
    ) {
        let mut m = self.base(t);
        m.progress = Some(clamp(done));
        m.total = Some(clamp(total));
        m.discovered = Some(clamp(found));
        self.sink.publish(DISCOVERY_PROGRESS_SCHEMA, &m).await;
    }

    /// One event per endpoint found, then a closing event with the run's result.
    pub async fn results(
        &self,
        registrations: &[ApplicationRegistrationModel],
        register_only: bool,
    ) {
        let mut index = 0;
        for reg in registrations {
            for ep in reg.endpoints.as_deref().unwrap_or_default() {
                let event = DiscoveryEventModel {
                    time_stamp: self.started.clone(),
                    index,
                    registration: Some(ep.clone()),
                    application: Some(reg.application.clone()),
                    result: None,
                };
                self.sink.publish(DISCOVERY_EVENTS_SCHEMA, &event).await;
                index += 1;
            }
        }
        let mut details = BTreeMap::new();
        details.insert("servers".to_string(), registrations.len().to_string());
        let closing = DiscoveryEventModel {
            time_stamp: self.started.clone(),
            index,
            registration: None,
            application: None,
            result: Some(DiscoveryResultModel {
                id: self.request.id.clone(),
                discovery_config: self.request.configuration.clone(),
                register_only: Some(register_only),
                diagnostics: None,
                context: self.request.context.clone(),
            }),
        };
        self.sink.publish(DISCOVERY_EVENTS_SCHEMA, &closing).await;
    }
}

fn clamp(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
