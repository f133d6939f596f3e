//! The hub's route to an MQTT broker (`--hub-route-topic`): every stored device message is
//! published, QoS 1, on a topic of the twin API's broker for the user's own consumers — IoT
//! Hub's message routing to a custom endpoint, with the broker as the endpoint.
//!
//! Delivery is at least once: the route keeps how far the broker has acknowledged (in the
//! store, so a restart resumes there) and publishes again from there after a failure. On
//! PostgreSQL one replica routes at a time (a session advisory lock; another takes over when
//! its connection goes), so replicas do not each publish every message.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::Value;
use sqlx::{Connection, Row};
use tokio::sync::watch;

use super::messages::Message;
use super::Hub;

/// The route's name in the store (one route today).
const NAME: &str = "broker";
/// Messages published before waiting for their acknowledgements.
const WINDOW: usize = 100;
/// How long the broker may take to acknowledge a window.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failure (broker or database) before trying again.
const RETRY: Duration = Duration::from_secs(5);
/// The advisory lock of the replica that routes (ASCII "hubroute").
const ROUTE_LOCK: i64 = 0x6875_6272_6f75_7465;

/// Where a message goes: a topic name with `{deviceId}`, `{moduleId}` and `{topic}` (the
/// message's `topic` property, which the module sets to the broker topic it would have used,
/// taken only under `{deviceId}/` and not on a module's `state`, `events` or `methods`
/// topics; otherwise IoT Hub's own device-to-cloud topic of the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate(String);

const PLACEHOLDERS: [&str; 3] = ["{deviceId}", "{moduleId}", "{topic}"];

/// Whether `t` may be published to: MQTT's rules for a topic name.
fn valid_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= 4096 && !t.contains(['+', '#', '\0'])
}

/// Whether a device may name `topic`: only under its own id, and not where the twin API's
/// modules announce themselves or take requests (`{root}/state`, `/events`, `/methods`), so
/// a device cannot publish as another or forge a module's state.
fn in_namespace(topic: &str, device: &str) -> bool {
    let Some(rest) = topic.strip_prefix(device).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    let level = rest.split('/').next().unwrap_or_default();
    !rest.is_empty() && !matches!(level, "state" | "events" | "methods")
}

/// Device and module ids may hold `+` and `#`, which no topic name may: escaped as in URLs.
fn escape(id: &str) -> String {
    id.replace('+', "%2B").replace('#', "%23")
}

impl TopicTemplate {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut rest = s.to_string();
        for p in PLACEHOLDERS {
            rest = rest.replace(p, "x");
        }
        if rest.contains(['{', '}']) {
            return Err(format!(
                "'{s}': placeholders are {{deviceId}}, {{moduleId}} and {{topic}}"
            ));
        }
        if !valid_topic(&rest) {
            return Err(format!(
                "'{s}' is not an MQTT topic name (empty, or with + or #)"
            ));
        }
        Ok(Self(s.to_string()))
    }

    /// The topic of `m`; a message without a usable `topic` property gets IoT Hub's own
    /// device-to-cloud topic for `{topic}`.
    pub fn topic_for(&self, m: &Message) -> String {
        let (device, module) = (escape(&m.device_id), escape(&m.module_id));
        let own = if module.is_empty() {
            format!("devices/{device}/messages/events")
        } else {
            format!("devices/{device}/modules/{module}/messages/events")
        };
        let topic = m
            .properties
            .get("topic")
            .and_then(Value::as_str)
            .filter(|t| valid_topic(t) && in_namespace(t, &device))
            .map_or(own, str::to_string);
        self.0
            .replace("{deviceId}", &device)
            .replace("{moduleId}", &module)
            .replace("{topic}", &topic)
    }
}

/// MQTT 5 properties of a routed message: its content type, and its application and
/// IoT Hub properties as user properties.
fn properties(m: &Message) -> PublishProperties {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut user: Vec<(String, String)> = m
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    user.push(("iothub-connection-device-id".into(), m.device_id.clone()));
    if !m.module_id.is_empty() {
        user.push(("iothub-connection-module-id".into(), m.module_id.clone()));
    }
    user.push(("iothub-enqueuedtime".into(), m.enqueued_time.clone()));
    for (k, v) in &m.system_properties {
        if k != "content-type" {
            user.push((k.clone(), text(v)));
        }
    }
    PublishProperties {
        content_type: m.system_properties.get("content-type").map(text),
        user_properties: user,
        ..Default::default()
    }
}

/// Why routing stopped for now.
#[derive(Debug)]
enum Stop {
    Shutdown,
    Failed(String),
}

/// Failures in a row at one position: a message the broker keeps refusing (say, larger than
/// it takes) is skipped after [`MAX_STRIKES`], with an error, rather than stopping the route.
#[derive(Default)]
struct Strikes {
    position: String,
    count: u32,
}

const MAX_STRIKES: u32 = 3;

/// Sets the route's first position (the newest message) unless it has one: messages stored
/// from now on are routed, also those that arrive before the route's task runs.
pub async fn prepare(hub: &Hub) -> Result<(), super::HubError> {
    if hub.store.route_position(NAME).await?.is_none() {
        let newest = hub.messages.newest().await?;
        hub.store.set_route_position(NAME, &newest).await?;
    }
    Ok(())
}

/// Routes until `shutdown`; `database_url` is PostgreSQL's when replicas may share it.
pub async fn run(
    hub: Arc<Hub>,
    template: TopicTemplate,
    options: MqttOptions,
    database_url: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut strikes = Strikes::default();
    loop {
        // On PostgreSQL: route only while holding the lock, on a connection of its own.
        let lock = if database_url.starts_with("postgres") {
            let taken = tokio::select! {
                t = leadership(&database_url) => t,
                () = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
            };
            match taken {
                Ok(Some(conn)) => Ok(Some(conn)),
                Ok(None) => Err("another replica routes".to_string()),
                Err(e) => Err(format!("taking the route's lock: {e}")),
            }
        } else {
            Ok(None)
        };
        let outcome = match lock {
            Ok(conn) => deliver(&hub, &template, &options, conn, &mut strikes, &mut shutdown).await,
            Err(why) => Err(Stop::Failed(why)),
        };
        match outcome {
            Ok(()) | Err(Stop::Shutdown) => return,
            Err(Stop::Failed(why)) => {
                tracing::debug!(%why, "hub route: pausing");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
                }
            }
        }
    }
}

/// A connection holding the route's lock, or `None` when another replica holds it.
async fn leadership(url: &str) -> Result<Option<sqlx::AnyConnection>, sqlx::Error> {
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let row = sqlx::query("SELECT pg_try_advisory_lock($1) AS ok")
        .bind(ROUTE_LOCK)
        .fetch_one(&mut conn)
        .await?;
    let ok: bool = row.try_get("ok")?;
    Ok(ok.then_some(conn))
}

async fn deliver(
    hub: &Hub,
    template: &TopicTemplate,
    options: &MqttOptions,
    mut lock: Option<sqlx::AnyConnection>,
    strikes: &mut Strikes,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    let failed = |e: &dyn std::fmt::Display| Stop::Failed(e.to_string());
    // Set at start-up by `prepare`.
    let mut position = hub
        .store
        .route_position(NAME)
        .await
        .map_err(|e| failed(&e))?
        .unwrap_or_default();
    let (client, mut events) = AsyncClient::new(options.clone(), WINDOW * 2);
    let mut live = hub.messages.subscribe();
    tracing::info!(%position, "hub route: delivering device messages to the broker");
    loop {
        let mut page = hub
            .messages
            .after(&position, WINDOW)
            .await
            .map_err(|e| failed(&e))?;
        if page.is_empty() {
            // Nothing to send: wait for a message, keeping the connection and the lock alive.
            tokio::select! {
                _ = live.recv() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {
                    if let Some(conn) = lock.as_mut() {
                        conn.ping().await.map_err(|e| failed(&e))?;
                    }
                }
                polled = events.poll() => {
                    polled.map_err(|e| failed(&e))?;
                }
                () = async { let _ = shutdown.wait_for(|s| *s).await; } => return Err(Stop::Shutdown),
            }
            continue;
        }
        // Still the only replica routing: the lock lives as long as its connection.
        if let Some(conn) = lock.as_mut() {
            conn.ping().await.map_err(|e| failed(&e))?;
        }
        if strikes.position == position && strikes.count >= MAX_STRIKES {
            let poison = page.remove(0);
            tracing::error!(id = %poison.id, device = %poison.device_id, topic = %template.topic_for(&poison), "hub route: the broker keeps refusing a message; it is skipped");
            position.clone_from(&poison.id);
            hub.store
                .set_route_position(NAME, &position)
                .await
                .map_err(|e| failed(&e))?;
            *strikes = Strikes::default();
            continue;
        }
        let outcome = publish_window(&client, &mut events, template, &page).await;
        if let Err(e) = outcome {
            if strikes.position == position {
                strikes.count += 1;
            } else {
                *strikes = Strikes {
                    position: position.clone(),
                    count: 1,
                };
            }
            return Err(e);
        }
        *strikes = Strikes::default();
        if let Some(last) = page.last() {
            position.clone_from(&last.id);
            hub.store
                .set_route_position(NAME, &position)
                .await
                .map_err(|e| failed(&e))?;
        }
    }
}

/// Publishes `page` and waits for the broker's acknowledgements (not cut short by a
/// shutdown: acknowledged messages are then recorded as such and not published again).
async fn publish_window(
    client: &AsyncClient,
    events: &mut rumqttc::v5::EventLoop,
    template: &TopicTemplate,
    page: &[Message],
) -> Result<(), Stop> {
    let failed = |e: &dyn std::fmt::Display| Stop::Failed(e.to_string());
    for m in page {
        client
            .publish_with_properties(
                template.topic_for(m),
                QoS::AtLeastOnce,
                false,
                Bytes::clone(&m.body),
                properties(m),
            )
            .await
            .map_err(|e| failed(&e))?;
    }
    let mut acked = 0;
    let acks = async {
        while acked < page.len() {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    acked += 1;
                    if !matches!(
                        ack.reason,
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                    ) {
                        // Refused for good (not authorised, topic invalid, …): said loudly,
                        // not retried forever.
                        tracing::error!(reason = ?ack.reason, "hub route: the broker refused a routed message");
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(failed(&e)),
            }
        }
        Ok(())
    };
    tokio::time::timeout(ACK_TIMEOUT, acks)
        .await
        .map_err(|_| Stop::Failed("the broker did not acknowledge in time".into()))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn message(device: &str, module: &str, topic: Option<&str>) -> Message {
        let mut properties = serde_json::Map::new();
        if let Some(t) = topic {
            properties.insert("topic".into(), t.into());
        }
        Message {
            id: "1".into(),
            device_id: device.into(),
            module_id: module.into(),
            enqueued_time: "t".into(),
            system_properties: serde_json::Map::new(),
            properties,
            body: Bytes::new(),
        }
    }

    #[test]
    fn templates_name_topics_and_refuse_what_mqtt_would() {
        let t = TopicTemplate::parse("{topic}").unwrap();
        assert_eq!(
            t.topic_for(&message("up", "m", Some("up/messages/x"))),
            "up/messages/x"
        );
        // Only under the device's own id, and never a module's state, events or methods.
        for elsewhere in [
            "other/messages/x",
            "up/state",
            "up/methods/ValueRead_V2",
            "up/events",
            "up",
            "up/",
        ] {
            assert_eq!(
                t.topic_for(&message("up", "m", Some(elsewhere))),
                "devices/up/modules/m/messages/events",
                "{elsewhere}"
            );
        }
        // No topic property, or one no broker takes: the hub's own topic.
        assert_eq!(
            t.topic_for(&message("d", "m", None)),
            "devices/d/modules/m/messages/events"
        );
        assert_eq!(
            t.topic_for(&message("d", "", Some("a/#"))),
            "devices/d/messages/events"
        );
        let t = TopicTemplate::parse("hub/{deviceId}/{moduleId}").unwrap();
        assert_eq!(t.topic_for(&message("a+b#", "m", None)), "hub/a%2Bb%23/m");
        for bad in ["", "a/+", "a/#", "{device}", "x/{topic"] {
            assert!(TopicTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
