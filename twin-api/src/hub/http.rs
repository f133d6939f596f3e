//! IoT Hub's service routes: devices, modules, twins and queries, with IoT Hub's status
//! codes (a create answers 200, a delete 204), etags and `If-Match`, and its authorisation:
//! a shared access policy's SAS token, or one of the twin API's own credentials.
//!
//! `api-version` and other query members IoT Hub clients send are accepted and ignored: the
//! shapes here are those of 2021-04-12, which every later version keeps.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use base64::Engine;
use iiot_auth::{Authenticator, Role};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::HubError;
use super::identity::{Identity, IdentityRequest, NEVER};
use super::query::{self, Projection, Source};
use super::sas::SasToken;
use super::store::Right;
use super::twin::TwinState;
use super::Hub;
use crate::registry::now;

/// Largest `top` of `GET /devices` and page of a query.
const MAX_LIST: usize = 1000;
/// Page of a query when the caller names none (IoT Hub's default).
const DEFAULT_QUERY_PAGE: usize = 100;
/// Most identities one query page reads before it answers with what it found and a
/// continuation: a filter that matches little must not read a large registry in one request.
const MAX_QUERY_SCAN: usize = 10 * MAX_LIST;

#[derive(Clone)]
pub struct HubState {
    pub hub: Arc<Hub>,
    pub auth: Arc<Authenticator>,
}

/// Who is calling, by the rights they hold.
pub(super) struct Caller {
    rights: Vec<Right>,
}

impl Caller {
    pub(super) fn may(&self, r: Right) -> bool {
        self.rights.contains(&r)
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl HubState {
    /// Checks the caller holds `right`: a SAS token of one of the hub's policies (its `skn`)
    /// covering this path, or an API key / JWT whose roles map to it.
    pub(super) fn authorize(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        right: Right,
    ) -> Result<Caller, HubError> {
        let raw = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let caller = if raw.trim_start().starts_with("SharedAccessSignature") {
            self.policy_caller(raw, uri)?
        } else {
            let principal = self.auth.authenticate(headers).map_err(|e| match e {
                iiot_auth::AuthError::Missing | iiot_auth::AuthError::Invalid => {
                    HubError::Unauthorized(e.to_string())
                }
                other => HubError::Forbidden(other.to_string()),
            })?;
            let mut rights = Vec::new();
            if principal.has(Role::Reader) {
                rights.push(Right::RegistryRead);
            }
            if principal.has(Role::Writer) {
                rights.push(Right::ServiceConnect);
            }
            if principal.has(Role::Admin) {
                rights.push(Right::RegistryWrite);
            }
            Caller { rights }
        };
        if caller.may(right) {
            Ok(caller)
        } else {
            Err(HubError::Forbidden(format!(
                "this credential lacks the {right:?} permission"
            )))
        }
    }

    fn policy_caller(&self, raw: &str, uri: &Uri) -> Result<Caller, HubError> {
        let unauthorized = |e: super::sas::SasError| HubError::Unauthorized(e.to_string());
        let token = SasToken::parse(raw).map_err(unauthorized)?;
        let Some(name) = token.skn.as_deref() else {
            return Err(HubError::Unauthorized(
                "a service token names its shared access policy in skn".into(),
            ));
        };
        let Some(policy) = self.hub.policies.iter().find(|p| p.name == name) else {
            return Err(HubError::Unauthorized(format!(
                "no shared access policy '{name}'"
            )));
        };
        let now = unix_now();
        token
            .verify(&policy.keys.primary_key, now)
            .or_else(|_| token.verify(&policy.keys.secondary_key, now))
            .map_err(unauthorized)?;
        token
            .covers(&self.hub.hostname, uri.path())
            .map_err(unauthorized)?;
        Ok(Caller {
            rights: policy.rights.clone(),
        })
    }
}

/// What `If-Match` asks: nothing, anything (`*` or `"*"`, as the SDKs send it), or one etag.
#[derive(Debug, PartialEq)]
pub(super) enum IfMatch {
    Absent,
    Any,
    Etag(String),
}

fn if_match(headers: &HeaderMap) -> IfMatch {
    let Some(v) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return IfMatch::Absent;
    };
    let v = v.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    let v = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v);
    match v {
        "" => IfMatch::Absent,
        "*" => IfMatch::Any,
        tag => IfMatch::Etag(tag.to_string()),
    }
}

impl IfMatch {
    fn check(&self, current: &str) -> Result<(), HubError> {
        match self {
            IfMatch::Etag(want) if want != current => Err(HubError::PreconditionFailed(format!(
                "'{want}' is not '{current}'"
            ))),
            _ => Ok(()),
        }
    }
}

fn json_object(body: &Bytes) -> Result<Map<String, Value>, HubError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(HubError::Argument("the body must be a JSON object".into())),
        Err(e) => Err(HubError::Argument(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

fn check_ids(device_id: &str, module_id: Option<&str>) -> Result<(), HubError> {
    crate::ids::validate_id(device_id)?;
    if let Some(m) = module_id {
        crate::ids::validate_id(m)?;
    }
    Ok(())
}

fn not_found(device_id: &str, module_id: &str) -> HubError {
    if module_id.is_empty() {
        HubError::DeviceNotFound(device_id.into())
    } else {
        HubError::ModuleNotFound(device_id.into(), module_id.into())
    }
}

/// A generation id as IoT Hub shows them: a number that differs for every incarnation of an
/// id, so a client can tell a deleted-and-recreated identity from the one it knew.
fn new_generation_id() -> String {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    (u64::from_be_bytes(n) % 1_000_000_000_000_000_000).to_string()
}

impl Hub {
    pub(super) async fn get_identity(
        &self,
        device_id: &str,
        module_id: &str,
    ) -> Result<Identity, HubError> {
        self.store
            .get(device_id, module_id)
            .await?
            .ok_or_else(|| not_found(device_id, module_id))
    }

    /// `PUT /devices/{id}[/modules/{m}]`: without `If-Match` a create (409 when it exists),
    /// with `*` a create or replace, with an etag a replace of exactly that version.
    pub(super) async fn put_identity(
        &self,
        device_id: &str,
        module_id: &str,
        body: &Bytes,
        condition: IfMatch,
    ) -> Result<Identity, HubError> {
        let body = json_object(body)?;
        let request = || {
            serde_json::from_value::<IdentityRequest>(Value::Object(body.clone()))
                .map_err(|e| HubError::Argument(format!("the body is not a valid identity: {e}")))
        };
        request()?;
        // The device a new module joins, by generation: checked again after the insert.
        let device_generation = if module_id.is_empty() {
            None
        } else {
            match self.store.get(device_id, "").await? {
                Some(d) => Some(d.generation_id),
                None => return Err(HubError::DeviceNotFound(device_id.into())),
            }
        };
        for _ in 0..20 {
            let now = now();
            let current = self.store.get(device_id, module_id).await?;
            match (&current, &condition) {
                (Some(_), IfMatch::Absent) => {
                    return Err(if module_id.is_empty() {
                        HubError::DeviceExists(device_id.into())
                    } else {
                        HubError::ModuleExists(device_id.into(), module_id.into())
                    })
                }
                (None, IfMatch::Etag(_)) => return Err(not_found(device_id, module_id)),
                _ => {}
            }
            if let Some(old) = current {
                let updated = self
                    .store
                    .update(device_id, module_id, |i| {
                        if i.revision != old.revision {
                            return Err(HubError::PreconditionFailed("changed".into()));
                        }
                        condition.check(&i.etag())?;
                        let (desc, keys) = request()?.resolve(
                            device_id,
                            module_id,
                            Some(i),
                            &now,
                            super::secrets::new_key,
                        )?;
                        i.desc = desc;
                        i.keys = keys;
                        Ok(true)
                    })
                    .await;
                match updated {
                    Ok(Some(i)) => {
                        // Disabled, or its credential changed: sessions on the old one end.
                        let credential_changed = i.keys != old.keys
                            || i.desc.auth_type != old.desc.auth_type
                            || i.desc.primary_thumbprint != old.desc.primary_thumbprint
                            || i.desc.secondary_thumbprint != old.desc.secondary_thumbprint;
                        if module_id.is_empty() && !i.desc.enabled {
                            self.close_device(device_id).await;
                        } else if credential_changed {
                            self.close_identity(device_id, module_id).await;
                        }
                        return Ok(i);
                    }
                    Ok(None) => continue,
                    // Changed between the two reads: read again, unless the caller's etag
                    // is what no longer matches.
                    Err(HubError::PreconditionFailed(m)) if m == "changed" => continue,
                    Err(e) => return Err(e),
                }
            }
            let (desc, keys) =
                request()?.resolve(device_id, module_id, None, &now, super::secrets::new_key)?;
            let identity = Identity {
                device_id: device_id.into(),
                module_id: module_id.into(),
                generation_id: new_generation_id(),
                revision: 1,
                desc,
                keys,
                twin: TwinState::new(&now),
                connected: false,
                connection_updated: NEVER.into(),
                last_activity: NEVER.into(),
                subscriptions: 0,
                connection_id: String::new(),
                sealed: None,
            };
            if self.store.insert(&identity).await? {
                // A device deleted (and perhaps made again) while its module was being
                // created would leave the module behind with its keys; the device's delete
                // cannot see an insert that commits after it, so the insert looks again.
                if let Some(generation) = &device_generation {
                    let same = self
                        .store
                        .get(device_id, "")
                        .await?
                        .is_some_and(|d| d.generation_id == *generation);
                    if !same {
                        let _ = self.store.delete(&identity).await;
                        return Err(HubError::DeviceNotFound(device_id.into()));
                    }
                }
                return Ok(identity);
            }
        }
        Err(HubError::Internal(format!(
            "identity '{device_id}/{module_id}' kept changing; try again"
        )))
    }

    pub(super) async fn delete_identity(
        &self,
        device_id: &str,
        module_id: &str,
        condition: IfMatch,
    ) -> Result<(), HubError> {
        for _ in 0..20 {
            let current = self.get_identity(device_id, module_id).await?;
            condition.check(&current.etag())?;
            if self.store.delete(&current).await? {
                if module_id.is_empty() {
                    self.close_device(device_id).await;
                } else {
                    self.close_identity(device_id, module_id).await;
                }
                return Ok(());
            }
        }
        Err(HubError::Internal(format!(
            "identity '{device_id}/{module_id}' kept changing; try again"
        )))
    }

    /// `PATCH` (merge) or `PUT` (replace) of a twin's tags and desired properties.
    pub(super) async fn write_twin(
        &self,
        device_id: &str,
        module_id: &str,
        body: &Bytes,
        condition: IfMatch,
        replace: bool,
    ) -> Result<Identity, HubError> {
        let body = json_object(body)?;
        let section =
            |v: Option<&Value>, name: &str| -> Result<Option<Map<String, Value>>, HubError> {
                match v {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Object(o)) => Ok(Some(o.clone())),
                    Some(_) => Err(HubError::Argument(format!("{name} must be a JSON object"))),
                }
            };
        let tags = section(body.get("tags"), "tags")?;
        let properties = section(body.get("properties"), "properties")?;
        let desired = section(
            properties.as_ref().and_then(|p| p.get("desired")),
            "properties.desired",
        )?;
        let mut before = (0, Map::new());
        let updated = self
            .store
            .update(device_id, module_id, |i| {
                condition.check(&i.twin.etag())?;
                before = (i.twin.desired.version, i.twin.desired.props.clone());
                let now = now();
                if replace {
                    i.twin.replace(
                        &tags.clone().unwrap_or_default(),
                        &desired.clone().unwrap_or_default(),
                        &now,
                    )?;
                    Ok(true)
                } else {
                    i.twin.patch(tags.as_ref(), desired.as_ref(), &now)
                }
            })
            .await?;
        let i = updated.ok_or_else(|| not_found(device_id, module_id))?;
        if module_id == "$edgeHub" {
            self.forget_routes(device_id);
        }
        if i.twin.desired.version != before.0 {
            // A connected device hears of the change at once: the patch it asked for, or after
            // a replace the whole section with `null` for every member it lost; `$version` in
            // the body, as the SDKs require.
            let mut patch = if replace {
                let mut p = i.twin.desired.props.clone();
                let gone: Vec<String> = before
                    .1
                    .keys()
                    .filter(|k| !p.contains_key(*k))
                    .cloned()
                    .collect();
                for k in gone {
                    p.insert(k, Value::Null);
                }
                p
            } else {
                desired.clone().unwrap_or_default()
            };
            patch.retain(|k, _| !k.starts_with('$'));
            patch.insert("$version".into(), i.twin.desired.version.into());
            self.push_desired(
                &i,
                super::endpoint::topics::desired_patch(i.twin.desired.version),
                Bytes::from(Value::Object(patch).to_string()),
            )
            .await;
        }
        Ok(i)
    }

    async fn twin_json(&self, i: &Identity) -> Result<Value, HubError> {
        let enabled = if i.is_module() {
            self.store.device_enabled(&i.device_id).await?
        } else {
            i.desc.enabled
        };
        Ok(i.twin_json(enabled))
    }
}

fn with_etag(body: Value, etag: &str) -> Response {
    let mut res = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// `{device_id}` and, on module routes, `{module_id}`: one handler serves both forms.
#[derive(Debug, Deserialize)]
pub(super) struct Ids {
    device_id: String,
    #[serde(default)]
    module_id: String,
}

impl Ids {
    pub(super) fn checked(&self) -> Result<(&str, &str), HubError> {
        let m = (!self.module_id.is_empty()).then_some(self.module_id.as_str());
        check_ids(&self.device_id, m)?;
        Ok((&self.device_id, &self.module_id))
    }
}

async fn get_identity(
    State(s): State<HubState>,
    Path(ids): Path<Ids>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HubError> {
    let caller = s.authorize(&headers, &uri, Right::RegistryRead)?;
    let (d, m) = ids.checked()?;
    let i = s.hub.get_identity(d, m).await?;
    Ok(with_etag(
        i.to_json(caller.may(Right::RegistryWrite)),
        &i.etag(),
    ))
}

async fn put_identity(
    State(s): State<HubState>,
    Path(ids): Path<Ids>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, HubError> {
    s.authorize(&headers, &uri, Right::RegistryWrite)?;
    let (d, m) = ids.checked()?;
    let i = s.hub.put_identity(d, m, &body, if_match(&headers)).await?;
    tracing::info!(device = %d, module = %m, "hub: identity written");
    Ok(with_etag(i.to_json(true), &i.etag()))
}

async fn delete_identity(
    State(s): State<HubState>,
    Path(ids): Path<Ids>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<StatusCode, HubError> {
    s.authorize(&headers, &uri, Right::RegistryWrite)?;
    let (d, m) = ids.checked()?;
    s.hub.delete_identity(d, m, if_match(&headers)).await?;
    tracing::info!(device = %d, module = %m, "hub: identity deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A page size given as `name` (`top`, `x-ms-max-item-count`): 1 to [`MAX_LIST`], `default`
/// when absent.
fn page_size(given: Option<&str>, name: &str, default: usize) -> Result<usize, HubError> {
    match given {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIST).contains(n))
            .ok_or_else(|| {
                HubError::Argument(format!(
                    "{name} '{v}' must be a number from 1 to {MAX_LIST}"
                ))
            }),
    }
}

async fn list_devices(
    State(s): State<HubState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, HubError> {
    let caller = s.authorize(&headers, &uri, Right::RegistryRead)?;
    let top = page_size(params.get("top").map(String::as_str), "top", MAX_LIST)?;
    let devices = s.hub.store.after(false, None, ("", ""), top).await?;
    let show = caller.may(Right::RegistryWrite);
    Ok(Json(Value::Array(
        devices.iter().map(|d| d.to_json(show)).collect(),
    )))
}

async fn list_modules(
    State(s): State<HubState>,
    Path(device_id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, HubError> {
    let caller = s.authorize(&headers, &uri, Right::RegistryRead)?;
    check_ids(&device_id, None)?;
    s.hub.get_identity(&device_id, "").await?;
    // A device has at most a few dozen modules; one page holds them all.
    let modules = s
        .hub
        .store
        .after(true, Some(&device_id), (&device_id, ""), MAX_LIST)
        .await?;
    let show = caller.may(Right::RegistryWrite);
    Ok(Json(Value::Array(
        modules.iter().map(|m| m.to_json(show)).collect(),
    )))
}

async fn get_twin(
    State(s): State<HubState>,
    Path(ids): Path<Ids>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HubError> {
    s.authorize(&headers, &uri, Right::ServiceConnect)?;
    let (d, m) = ids.checked()?;
    let i = s.hub.get_identity(d, m).await?;
    Ok(with_etag(s.hub.twin_json(&i).await?, &i.twin.etag()))
}

async fn write_twin(
    s: HubState,
    ids: Ids,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
    replace: bool,
) -> Result<Response, HubError> {
    s.authorize(&headers, &uri, Right::ServiceConnect)?;
    let (d, m) = ids.checked()?;
    let i = s
        .hub
        .write_twin(d, m, &body, if_match(&headers), replace)
        .await?;
    Ok(with_etag(s.hub.twin_json(&i).await?, &i.twin.etag()))
}

async fn patch_twin(
    State(s): State<HubState>,
    Path(ids): Path<Ids>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, HubError> {
    write_twin(s, ids, headers, uri, body, false).await
}

async fn put_twin(
    State(s): State<HubState>,
    Path(ids): Path<Ids>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, HubError> {
    write_twin(s, ids, headers, uri, body, true).await
}

/// Longest method name, as IoT Hub limits it.
const MAX_METHOD_NAME: usize = 100;

/// `POST /twins/{id}[/modules/{m}]/methods`: the call goes to the connected identity and its
/// answer comes back; 404 `DeviceNotOnline` when it is not there, 504 when it does not answer
/// within `responseTimeoutInSeconds` (5–300, default 30). `connectTimeoutInSeconds` waits that
/// long for the identity to connect first.
async fn invoke_method(
    State(s): State<HubState>,
    Path(ids): Path<Ids>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, HubError> {
    s.authorize(&headers, &uri, Right::ServiceConnect)?;
    let (d, m) = ids.checked()?;
    let (d, m) = (d.to_string(), m.to_string());
    let body = json_object(&body)?;
    let name = body
        .get("methodName")
        .and_then(Value::as_str)
        .filter(|n| {
            !n.is_empty()
                && n.len() <= MAX_METHOD_NAME
                && n.bytes().all(|b| b.is_ascii_graphic() && !b"/?#+%".contains(&b))
        })
        .ok_or_else(|| {
            HubError::Argument(format!(
                "methodName: 1 to {MAX_METHOD_NAME} visible ASCII characters without '/', '?', '#', '+' or '%'"
            ))
        })?
        .to_string();
    let seconds =
        |key: &str, default: u64, range: std::ops::RangeInclusive<u64>| match body.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v.as_u64().filter(|n| range.contains(n)).ok_or_else(|| {
                HubError::Argument(format!(
                    "{key} is whole seconds from {} to {}",
                    range.start(),
                    range.end()
                ))
            }),
        };
    let response_timeout = seconds("responseTimeoutInSeconds", 30, 5..=300)?;
    let connect_timeout = seconds("connectTimeoutInSeconds", 0, 0..=300)?;
    let payload = body.get("payload").cloned().unwrap_or(Value::Null);
    s.hub.get_identity(&d, &m).await?;
    let who = if m.is_empty() {
        d.clone()
    } else {
        format!("{d}/{m}")
    };
    let connect_by = tokio::time::Instant::now() + std::time::Duration::from_secs(connect_timeout);
    loop {
        let answer = s
            .hub
            .invoke(
                &d,
                &m,
                &name,
                Bytes::from(payload.to_string()),
                std::time::Duration::from_secs(response_timeout),
            )
            .await;
        match answer {
            Ok((status, payload)) => {
                // Devices answer JSON; anything else is passed on as a string.
                let payload = serde_json::from_slice::<Value>(&payload).unwrap_or_else(|_| {
                    if payload.is_empty() {
                        Value::Null
                    } else {
                        Value::String(String::from_utf8_lossy(&payload).into_owned())
                    }
                });
                return Ok(Json(json!({ "status": status, "payload": payload })));
            }
            Err(super::endpoint::live::MethodError::Timeout) => {
                return Err(HubError::MethodTimeout(who, response_timeout))
            }
            Err(super::endpoint::live::MethodError::NotOnline) => {
                if tokio::time::Instant::now() >= connect_by {
                    return Err(HubError::NotOnline(who));
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Where a query page resumes: the key of the last identity read.
fn encode_continuation(device_id: &str, module_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!([device_id, module_id]).to_string())
}

fn decode_continuation(token: &str) -> Result<(String, String), HubError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|b| serde_json::from_slice::<(String, String)>(&b).ok())
        .ok_or_else(|| HubError::Argument("x-ms-continuation is not a token this hub gave".into()))
}

/// `POST /devices/query`: twins matching the query, a page at a time (`x-ms-max-item-count`,
/// `x-ms-continuation`), or their count.
async fn query_twins(
    State(s): State<HubState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, HubError> {
    // IoT Hub lets either permission query twins.
    if s.authorize(&headers, &uri, Right::RegistryRead).is_err() {
        s.authorize(&headers, &uri, Right::ServiceConnect)?;
    }
    let body = json_object(&body)?;
    let Some(text) = body.get("query").and_then(Value::as_str) else {
        return Err(HubError::Argument(
            "the body needs a query string: {\"query\": \"SELECT * FROM devices\"}".into(),
        ));
    };
    let q = query::parse(text).map_err(|e| HubError::Argument(format!("query: {e}")))?;
    let page = page_size(
        headers
            .get("x-ms-max-item-count")
            .and_then(|v| v.to_str().ok()),
        "x-ms-max-item-count",
        DEFAULT_QUERY_PAGE,
    )?;
    let mut after = match headers
        .get("x-ms-continuation")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    {
        Some(t) => decode_continuation(t)?,
        None => (String::new(), String::new()),
    };
    let modules = q.source == Source::Modules;
    let mut enabled: HashMap<String, bool> = HashMap::new();
    let mut items = Vec::new();
    let mut count: u64 = 0;
    let mut scanned = 0usize;
    let counting = matches!(q.projection, Projection::Count { .. });
    let mut more = false;
    loop {
        let batch = s
            .hub
            .store
            .after(modules, None, (&after.0, &after.1), MAX_LIST)
            .await?;
        let exhausted = batch.len() < MAX_LIST;
        for i in &batch {
            after = (i.device_id.clone(), i.module_id.clone());
            scanned += 1;
            let device_enabled = if modules {
                match enabled.get(&i.device_id) {
                    Some(e) => *e,
                    None => {
                        let e = s.hub.store.device_enabled(&i.device_id).await?;
                        enabled.insert(i.device_id.clone(), e);
                        e
                    }
                }
            } else {
                i.desc.enabled
            };
            let twin = i.twin_json(device_enabled);
            if q.matches(&twin) {
                count += 1;
                if !counting {
                    items.push(twin);
                    if items.len() == page {
                        break;
                    }
                }
            }
            if !counting && scanned >= MAX_QUERY_SCAN {
                break;
            }
        }
        let stopped_early = !counting && (items.len() == page || scanned >= MAX_QUERY_SCAN);
        if stopped_early {
            // More may follow unless this was the very last identity.
            more = !(exhausted
                && batch.last().map(|i| (&i.device_id, &i.module_id))
                    == Some((&after.0, &after.1)));
            break;
        }
        if exhausted {
            break;
        }
    }
    let (body, item_type) = match &q.projection {
        Projection::Count { alias } => (json!([{ alias.clone(): count }]), "raw"),
        Projection::All => (Value::Array(items), "twin"),
    };
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert("x-ms-item-type", HeaderValue::from_static(item_type));
    if more {
        if let Ok(v) = HeaderValue::from_str(&encode_continuation(&after.0, &after.1)) {
            res.headers_mut().insert("x-ms-continuation", v);
        }
    }
    Ok(res)
}

/// The hub's service routes, ready to merge into the twin API's router.
pub fn routes(hub: Arc<Hub>, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/devices", get(list_devices).post(super::bulk::bulk))
        .route("/identities/export", get(super::bulk::export))
        .route("/identities/import", post(super::bulk::import))
        .route("/devices/query", post(query_twins))
        .route(
            "/devices/{device_id}",
            put(put_identity).get(get_identity).delete(delete_identity),
        )
        .route("/devices/{device_id}/modules", get(list_modules))
        .route(
            "/devices/{device_id}/modules/{module_id}",
            put(put_identity).get(get_identity).delete(delete_identity),
        )
        .route(
            "/twins/{device_id}",
            get(get_twin).patch(patch_twin).put(put_twin),
        )
        .route(
            "/twins/{device_id}/modules/{module_id}",
            get(get_twin).patch(patch_twin).put(put_twin),
        )
        .route("/events/v2/hub/messages", get(super::stream::messages))
        .route(
            "/devices/{device_id}/messages/deviceBound",
            post(super::c2d::send),
        )
        .route("/devices/{device_id}/commands", delete(super::c2d::purge))
        .route("/twins/{device_id}/methods", post(invoke_method))
        .route(
            "/twins/{device_id}/modules/{module_id}/methods",
            post(invoke_method),
        )
        .with_state(HubState { hub, auth })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn if_match_reads_quoted_and_bare_stars_as_any() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
            if_match(&m)
        };
        assert_eq!(h("*"), IfMatch::Any);
        assert_eq!(h("\"*\""), IfMatch::Any);
        assert_eq!(h("W/\"AAAA\""), IfMatch::Etag("AAAA".into()));
        assert_eq!(h("MTI="), IfMatch::Etag("MTI=".into()));
        assert_eq!(if_match(&HeaderMap::new()), IfMatch::Absent);
    }

    #[test]
    fn continuation_tokens_round_trip_and_refuse_garbage() {
        let t = encode_continuation("d/1", "m");
        assert_eq!(decode_continuation(&t).unwrap(), ("d/1".into(), "m".into()));
        assert!(decode_continuation("not-a-token!").is_err());
    }
}
