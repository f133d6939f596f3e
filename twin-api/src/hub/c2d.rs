//! Cloud-to-device messages from the service side. IoT Hub's service SDKs send them over
//! AMQP, which the hub does not speak; it takes them over HTTPS instead, in the shape IoT Hub's
//! HTTPS device API gives received messages: the body as sent, system properties in
//! `iothub-messageid`, `iothub-correlationid`, `iothub-userid`, `content-type`,
//! `content-encoding`, application properties in `iothub-app-{name}` headers, and the time to
//! live in seconds in `iothub-expiry` (default an hour, at most 48 hours).
//!
//! `POST /devices/{id}/messages/deviceBound` queues one (403
//! `DeviceMaximumQueueDepthExceeded` at 50 waiting, 413 over 64 KB); `DELETE
//! /devices/{id}/commands` purges the queue as IoT Hub's service API does.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::Json;
use bytes::Bytes;
use iiot_api::iothub::topics::PropertyBag;
use serde_json::{json, Value};

use super::deliveries::{self, Delivery};
use super::error::HubError;
use super::http::{HubState, Ids};
use super::store::Right;

/// Longest property name or value taken from a header.
const MAX_PROPERTY: usize = 1024;

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, HubError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|s| s.len() <= MAX_PROPERTY)
                .ok_or_else(|| {
                    HubError::Argument(format!(
                        "{name}: visible ASCII, at most {MAX_PROPERTY} bytes"
                    ))
                })
        })
        .transpose()
}

/// The property bag a device receives: system properties under their short names, then the
/// application properties sorted by name (as the SDKs send them).
fn properties(headers: &HeaderMap, message_id: &str) -> Result<PropertyBag, HubError> {
    let mut pairs = vec![("$.mid".to_string(), Some(message_id.to_string()))];
    for (name, short) in [
        ("iothub-correlationid", "$.cid"),
        ("iothub-userid", "$.uid"),
        ("content-type", "$.ct"),
        ("content-encoding", "$.ce"),
    ] {
        if let Some(v) = header(headers, name)? {
            pairs.push((short.to_string(), Some(v.to_string())));
        }
    }
    let mut application: Vec<(String, Option<String>)> = Vec::new();
    for (name, _) in headers.iter() {
        if let Some(key) = name.as_str().strip_prefix("iothub-app-") {
            if key.is_empty() {
                return Err(HubError::Argument(
                    "iothub-app-: a property needs a name".into(),
                ));
            }
            let value = header(headers, name.as_str())?.unwrap_or_default();
            application.push((key.to_string(), Some(value.to_string())));
        }
    }
    application.sort();
    pairs.extend(application);
    Ok(PropertyBag(pairs))
}

/// `POST /devices/{id}/messages/deviceBound`.
pub(super) async fn send(
    State(s): State<HubState>,
    Path(ids): Path<Ids>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, HubError> {
    s.authorize(&headers, &uri, Right::ServiceConnect)?;
    let (d, _) = ids.checked()?;
    if body.len() > deliveries::MAX_BODY_BYTES {
        return Err(HubError::TooLarge(format!(
            "a cloud-to-device message is at most {} bytes",
            deliveries::MAX_BODY_BYTES
        )));
    }
    let ttl = match header(&headers, "iothub-expiry")? {
        None => deliveries::DEFAULT_TTL_SECS,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|t| (1..=deliveries::MAX_TTL_SECS).contains(t))
            .ok_or_else(|| {
                HubError::Argument(format!(
                    "iothub-expiry: seconds to live, 1 to {}",
                    deliveries::MAX_TTL_SECS
                ))
            })?,
    };
    let identity = s.hub.get_identity(d, "").await?;
    let message_id = match header(&headers, "iothub-messageid")? {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + ttl;
    let delivery = Delivery {
        id: deliveries::new_id(),
        device_id: d.to_string(),
        module_id: String::new(),
        input: String::new(),
        properties: properties(&headers, &message_id)?,
        body,
        expires,
    };
    if !s
        .hub
        .deliveries
        .enqueue(&delivery, deliveries::MAX_QUEUED)
        .await?
    {
        return Err(HubError::QueueFull(d.to_string()));
    }
    s.hub
        .wake_deliveries(&identity.device_id, &identity.module_id)
        .await;
    let expiry = time::OffsetDateTime::from_unix_timestamp(expires)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    Ok(Json(json!({
        "messageId": message_id,
        "deviceId": d,
        "expiryTimeUtc": expiry,
    })))
}

/// `DELETE /devices/{id}/commands`: IoT Hub's purge of a device's cloud-to-device queue.
pub(super) async fn purge(
    State(s): State<HubState>,
    Path(ids): Path<Ids>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, HubError> {
    s.authorize(&headers, &uri, Right::ServiceConnect)?;
    let (d, _) = ids.checked()?;
    s.hub.get_identity(d, "").await?;
    let n = s.hub.deliveries.purge(d, "").await?;
    Ok(Json(
        json!({ "totalMessagesPurged": n, "deviceId": d, "moduleId": null }),
    ))
}
