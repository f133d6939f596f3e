//! Device and module identities: what a `PUT /devices/{id}` may set, the rules it must keep
//! (authentication kinds, key sizes, thumbprints, status) and the JSON IoT Hub shows for them.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::HubError;
use super::twin::TwinState;

/// Longest `statusReason`, as IoT Hub limits it.
const MAX_STATUS_REASON: usize = 128;

/// How an identity proves itself on the device endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthType {
    Sas,
    SelfSigned,
    CertificateAuthority,
    None,
}

impl AuthType {
    fn parse(s: &str) -> Result<Self, HubError> {
        match s.to_ascii_lowercase().as_str() {
            "sas" => Ok(AuthType::Sas),
            "selfsigned" => Ok(AuthType::SelfSigned),
            "certificateauthority" => Ok(AuthType::CertificateAuthority),
            "none" => Ok(AuthType::None),
            _ => Err(HubError::Argument(format!(
                "authentication.type '{s}': use sas, selfSigned, certificateAuthority or none"
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            AuthType::Sas => "sas",
            AuthType::SelfSigned => "selfSigned",
            AuthType::CertificateAuthority => "certificateAuthority",
            AuthType::None => "none",
        }
    }
}

/// The symmetric keys of a `sas` identity; never shown by `Debug`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Keys {
    pub primary_key: String,
    pub secondary_key: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// What an identity is, apart from its keys and twin; stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub enabled: bool,
    pub status_reason: Option<String>,
    pub status_updated_time: String,
    pub auth_type: AuthType,
    pub primary_thumbprint: Option<String>,
    pub secondary_thumbprint: Option<String>,
    pub iot_edge: bool,
    pub managed_by: Option<String>,
    pub device_scope: Option<String>,
    pub parent_scopes: Vec<String>,
    /// Grows with every change: the identity's etag.
    pub version: u64,
}

/// Never set: IoT Hub's "not yet" time.
pub const NEVER: &str = "0001-01-01T00:00:00Z";

/// One stored identity: a device (`module_id` empty) or a module.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub device_id: String,
    pub module_id: String,
    pub generation_id: String,
    /// Every write increments it; writes are guarded by it.
    pub revision: i64,
    pub desc: Description,
    pub keys: Option<Keys>,
    pub twin: TwinState,
    pub connected: bool,
    pub connection_updated: String,
    pub last_activity: String,
    /// Bits of the endpoint's `Subscriptions` a clean-session-0 client keeps.
    pub subscriptions: u8,
    /// The connection that marked the identity connected (empty: none).
    pub connection_id: String,
    /// The keys as stored (sealed), written back unchanged while the keys stay the same, so
    /// frequent writes (connection state, reported properties) do not re-encrypt them.
    pub(crate) sealed: Option<(Option<Keys>, String)>,
}

/// The members of a device or module body a caller may set; the rest is read-only and
/// ignored when it comes back.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityRequest {
    pub device_id: Option<String>,
    pub module_id: Option<String>,
    pub status: Option<String>,
    pub status_reason: Option<String>,
    pub authentication: Option<AuthenticationRequest>,
    pub capabilities: Option<Capabilities>,
    pub managed_by: Option<String>,
    pub device_scope: Option<String>,
    pub parent_scopes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationRequest {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub symmetric_key: Option<KeysRequest>,
    pub x509_thumbprint: Option<ThumbprintRequest>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysRequest {
    pub primary_key: Option<String>,
    pub secondary_key: Option<String>,
}

/// Keys are credentials: never shown.
impl std::fmt::Debug for KeysRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeysRequest(..)")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThumbprintRequest {
    pub primary_thumbprint: Option<String>,
    pub secondary_thumbprint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default)]
    pub iot_edge: bool,
}

fn check_key(name: &str, key: &str) -> Result<String, HubError> {
    let len = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map(|b| b.len())
        .map_err(|_| HubError::Argument(format!("{name} is not base64")))?;
    if !(16..=64).contains(&len) {
        return Err(HubError::Argument(format!(
            "{name} is {len} bytes; a key has 16 to 64 bytes"
        )));
    }
    Ok(key.trim().to_string())
}

fn check_thumbprint(name: &str, t: Option<&str>) -> Result<Option<String>, HubError> {
    let Some(t) = t.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if (t.len() == 40 || t.len() == 64) && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(t.to_ascii_uppercase()))
    } else {
        Err(HubError::Argument(format!(
            "{name} is a SHA-1 (40) or SHA-256 (64) thumbprint in hex"
        )))
    }
}

impl IdentityRequest {
    /// Checks the body against the path and turns it into what is stored. `old` is the
    /// identity being replaced (its keys are kept when the body names none); `new_key` makes
    /// a key when one is needed.
    pub fn resolve(
        self,
        device_id: &str,
        module_id: &str,
        old: Option<&Identity>,
        now: &str,
        new_key: impl Fn() -> String,
    ) -> Result<(Description, Option<Keys>), HubError> {
        if let Some(d) = self.device_id.as_deref().filter(|d| *d != device_id) {
            return Err(HubError::Argument(format!(
                "deviceId '{d}' in the body is not '{device_id}' of the path"
            )));
        }
        if let Some(m) = self.module_id.as_deref().filter(|m| *m != module_id) {
            return Err(HubError::Argument(format!(
                "moduleId '{m}' in the body is not '{module_id}' of the path"
            )));
        }
        let enabled = match self
            .status
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("enabled") => true,
            Some("disabled") if module_id.is_empty() => false,
            Some("disabled") => {
                return Err(HubError::Argument(
                    "a module has no status of its own; disable its device".into(),
                ))
            }
            Some(s) => {
                return Err(HubError::Argument(format!(
                    "status '{s}': use enabled or disabled"
                )))
            }
        };
        if let Some(r) = self.status_reason.as_deref() {
            if r.chars().count() > MAX_STATUS_REASON {
                return Err(HubError::Argument(format!(
                    "statusReason has at most {MAX_STATUS_REASON} characters"
                )));
            }
        }
        let auth = self.authentication.unwrap_or_default();
        let auth_type = match auth.kind.as_deref() {
            None => AuthType::Sas,
            Some(k) => AuthType::parse(k)?,
        };
        let given = auth.symmetric_key.unwrap_or_default();
        let thumbs = auth.x509_thumbprint.unwrap_or_default();
        let (primary_thumbprint, secondary_thumbprint) = (
            check_thumbprint("primaryThumbprint", thumbs.primary_thumbprint.as_deref())?,
            check_thumbprint(
                "secondaryThumbprint",
                thumbs.secondary_thumbprint.as_deref(),
            )?,
        );
        let keys = match auth_type {
            AuthType::Sas => {
                let kept = old.and_then(|o| o.keys.clone());
                let pick = |name, given: Option<String>, kept: Option<&String>| match given
                    .filter(|k| !k.trim().is_empty())
                {
                    Some(k) => check_key(name, &k),
                    None => Ok(kept.cloned().unwrap_or_else(&new_key)),
                };
                Some(Keys {
                    primary_key: pick(
                        "primaryKey",
                        given.primary_key,
                        kept.as_ref().map(|k| &k.primary_key),
                    )?,
                    secondary_key: pick(
                        "secondaryKey",
                        given.secondary_key,
                        kept.as_ref().map(|k| &k.secondary_key),
                    )?,
                })
            }
            _ => {
                let has_keys = given.primary_key.is_some_and(|k| !k.is_empty())
                    || given.secondary_key.is_some_and(|k| !k.is_empty());
                if has_keys {
                    return Err(HubError::Argument(format!(
                        "symmetric keys belong to authentication type sas, not {}",
                        auth_type.name()
                    )));
                }
                None
            }
        };
        let thumbprints = match auth_type {
            AuthType::SelfSigned => {
                if primary_thumbprint.is_none() {
                    return Err(HubError::Argument(
                        "selfSigned needs x509Thumbprint.primaryThumbprint".into(),
                    ));
                }
                (primary_thumbprint, secondary_thumbprint)
            }
            _ if primary_thumbprint.is_some() || secondary_thumbprint.is_some() => {
                return Err(HubError::Argument(format!(
                    "thumbprints belong to authentication type selfSigned, not {}",
                    auth_type.name()
                )))
            }
            _ => (None, None),
        };
        let status_updated_time = match old {
            Some(o) if o.desc.enabled == enabled => o.desc.status_updated_time.clone(),
            _ => now.to_string(),
        };
        let desc = Description {
            enabled,
            status_reason: self.status_reason,
            status_updated_time,
            auth_type,
            primary_thumbprint: thumbprints.0,
            secondary_thumbprint: thumbprints.1,
            iot_edge: self.capabilities.is_some_and(|c| c.iot_edge),
            managed_by: self.managed_by.filter(|m| !m.is_empty()),
            device_scope: self.device_scope,
            parent_scopes: self.parent_scopes.unwrap_or_default(),
            version: old.map_or(1, |o| o.desc.version + 1),
        };
        Ok((desc, keys))
    }
}

impl Identity {
    pub fn is_module(&self) -> bool {
        !self.module_id.is_empty()
    }

    /// The identity's etag: base64 of its version, IoT Hub's form.
    pub fn etag(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.desc.version.to_string())
    }

    fn connection_state(&self) -> &'static str {
        if self.connected {
            "Connected"
        } else {
            "Disconnected"
        }
    }

    fn authentication_json(&self, show_keys: bool) -> Value {
        let keys = self.keys.as_ref().filter(|_| show_keys);
        json!({
            "symmetricKey": {
                "primaryKey": keys.map(|k| k.primary_key.clone()),
                "secondaryKey": keys.map(|k| k.secondary_key.clone()),
            },
            "x509Thumbprint": {
                "primaryThumbprint": self.desc.primary_thumbprint,
                "secondaryThumbprint": self.desc.secondary_thumbprint,
            },
            "type": self.desc.auth_type.name(),
        })
    }

    /// The device or module as `GET /devices/{id}[/modules/{m}]` shows it; keys only when
    /// `show_keys` (callers who may write the registry).
    pub fn to_json(&self, show_keys: bool) -> Value {
        let mut v = json!({
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": self.etag(),
            "connectionState": self.connection_state(),
            "connectionStateUpdatedTime": self.connection_updated,
            "lastActivityTime": self.last_activity,
            "cloudToDeviceMessageCount": 0,
            "authentication": self.authentication_json(show_keys),
        });
        if self.is_module() {
            v["moduleId"] = self.module_id.clone().into();
            v["managedBy"] = self.desc.managed_by.clone().into();
        } else {
            v["status"] = self.status().into();
            v["statusReason"] = self.desc.status_reason.clone().into();
            v["statusUpdatedTime"] = self.desc.status_updated_time.clone().into();
            v["capabilities"] = json!({ "iotEdge": self.desc.iot_edge });
            v["deviceScope"] = self.desc.device_scope.clone().into();
            v["parentScopes"] = self.desc.parent_scopes.clone().into();
        }
        v
    }

    fn status(&self) -> &'static str {
        if self.desc.enabled {
            "enabled"
        } else {
            "disabled"
        }
    }

    /// The twin as `GET /twins/{id}[/modules/{m}]` and queries show it. A module's status is
    /// its device's, passed as `device_enabled`.
    pub fn twin_json(&self, device_enabled: bool) -> Value {
        let mut v = json!({
            "deviceId": self.device_id,
            "etag": self.twin.etag(),
            "deviceEtag": self.etag(),
            "status": if device_enabled { "enabled" } else { "disabled" },
            "statusUpdateTime": self.desc.status_updated_time,
            "connectionState": self.connection_state(),
            "lastActivityTime": self.last_activity,
            "cloudToDeviceMessageCount": 0,
            "authenticationType": self.desc.auth_type.name(),
            "x509Thumbprint": {
                "primaryThumbprint": self.desc.primary_thumbprint,
                "secondaryThumbprint": self.desc.secondary_thumbprint,
            },
            "modelId": "",
            "version": self.twin.version,
            "properties": self.twin.properties_json(),
        });
        if !self.twin.tags.is_empty() {
            v["tags"] = Value::Object(self.twin.tags.clone());
        }
        if self.is_module() {
            v["moduleId"] = self.module_id.clone().into();
        } else {
            v["statusReason"] = self.desc.status_reason.clone().into();
            v["capabilities"] = json!({ "iotEdge": self.desc.iot_edge });
            if let Some(s) = &self.desc.device_scope {
                v["deviceScope"] = s.clone().into();
            }
            v["parentScopes"] = self.desc.parent_scopes.clone().into();
        }
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn req(v: Value) -> IdentityRequest {
        serde_json::from_value(v).unwrap()
    }

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn sas_keys_are_kept_checked_or_made() {
        let made = || K1.to_string();
        let (d, k) = req(json!({"deviceId": "d1"}))
            .resolve("d1", "", None, "T0", made)
            .unwrap();
        assert_eq!(d.auth_type, AuthType::Sas);
        assert_eq!(k.unwrap().primary_key, K1);
        assert!(
            req(json!({"authentication": {"symmetricKey": {"primaryKey": "c2hvcnQ="}}}))
                .resolve("d1", "", None, "T0", made)
                .unwrap_err()
                .to_string()
                .contains("16 to 64")
        );
        assert!(req(json!({"deviceId": "d2"}))
            .resolve("d1", "", None, "T0", made)
            .is_err());
        assert!(req(json!({"status": "paused"}))
            .resolve("d1", "", None, "T0", made)
            .is_err());
    }

    #[test]
    fn x509_kinds_take_thumbprints_or_nothing() {
        let made = || K1.to_string();
        let t = "a".repeat(40);
        let (d, k) = req(json!({"authentication": {"type": "selfSigned",
            "x509Thumbprint": {"primaryThumbprint": t}}}))
        .resolve("d1", "", None, "T0", made)
        .unwrap();
        assert_eq!(
            d.primary_thumbprint.as_deref(),
            Some("A".repeat(40).as_str())
        );
        assert!(k.is_none());
        assert!(req(json!({"authentication": {"type": "selfSigned"}}))
            .resolve("d1", "", None, "T0", made)
            .is_err());
        assert!(
            req(json!({"authentication": {"type": "certificateAuthority",
            "symmetricKey": {"primaryKey": K1}}}))
            .resolve("d1", "", None, "T0", made)
            .is_err()
        );
        assert!(req(json!({"authentication": {"type": "selfSigned",
            "x509Thumbprint": {"primaryThumbprint": "xyz"}}}))
        .resolve("d1", "", None, "T0", made)
        .is_err());
    }
}
