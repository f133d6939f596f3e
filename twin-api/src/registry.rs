//! The registry of modules (publishers), applications and endpoints: the rules on top of the
//! store. Discovery results become applications and endpoints with Azure's ids; an endpoint
//! resolves to the module that serves it and the connection model to send that module.

use std::sync::Arc;

use iiot_api::{ApplicationInfoModel, ApplicationRegistrationModel, EndpointRegistrationModel};
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use crate::error::ApiError;
use crate::ids::{application_id, endpoint_id, validate_id};
use crate::liveness::LivenessTable;
use crate::query::{QueryToken, RegistryQuery};
use crate::rpc::ModuleEvent;
use crate::store::{Change, Filter, Record, Store, APPLICATION, ENDPOINT, PUBLISHER};

/// Marks a disabled application and its endpoints in the stored body. The 2.9 models have no
/// disabled flag: as in Azure's registry, a disabled application and its endpoints show
/// `notSeenSince` (the time it was disabled, or the earlier time it was last missed) and so
/// drop out of queries unless `includeNotSeenSince` is set; this extra member says why, so
/// enabling clears only what disabling set and discovery does not undo an admin's decision.
/// Purging not-seen applications removes disabled ones too, as in Azure (disabled is
/// soft-deleted there).
pub const DISABLED: &str = "disabled";

/// Members of a stored application that discovery does not report and so must not erase
/// when it upserts the application again.
const KEPT_ON_REDISCOVERY: &[&str] = &[DISABLED, "certificate"];

/// `ApplicationRegistrationUpdateModel`: absent or null members leave the field as it is.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationUpdate {
    #[serde(default)]
    pub product_uri: Option<String>,
    #[serde(default)]
    pub application_name: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
    /// A locale mapped to null removes that name.
    #[serde(default)]
    pub localized_names: Option<std::collections::BTreeMap<String, Option<String>>>,
    /// Base64 DER (as in the 2.8 model; 2.9.15 dropped it from the info model, so it is only
    /// kept when an admin sets it).
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub discovery_urls: Option<Vec<String>>,
    #[serde(default)]
    pub discovery_profile_uri: Option<String>,
    #[serde(default)]
    pub gateway_server_uri: Option<String>,
    /// Accepted for compatibility; `updated` names the authenticated caller instead, since a
    /// client could claim any authority here.
    #[serde(default)]
    pub context: Option<Value>,
}

fn is_disabled(body: &Value) -> bool {
    body.get(DISABLED).and_then(Value::as_bool) == Some(true)
}

/// Current time, RFC 3339 UTC.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Where a twin request goes.
#[derive(Debug, Clone)]
pub struct Route {
    pub module: String,
    pub root: String,
    pub connection: Value,
}

/// Admin changes to a publisher (`PublisherUpdateModel` plus identity status).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublisherUpdate {
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    /// `enabled` or `disabled` (any case).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub status_reason: Option<String>,
}

pub struct Registry {
    pub store: Store,
    pub liveness: Arc<LivenessTable>,
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

impl Registry {
    pub fn new(store: Store, liveness: Arc<LivenessTable>) -> Self {
        Self { store, liveness }
    }

    // ---- publishers -------------------------------------------------------------------

    /// The publisher as the API shows it: identity record plus live connection state.
    pub fn publisher_json(&self, r: &Record) -> Value {
        let mut v = r.to_json();
        if let (Value::Object(o), Value::Object(live)) = (&mut v, self.liveness.fields(&r.id)) {
            for (k, val) in live {
                if !val.is_null() {
                    o.insert(k, val);
                }
            }
        }
        v
    }

    /// Creates the identity of a module the first time it announces itself.
    pub async fn publisher_seen(&self, id: &str, root: &str) -> Result<(), ApiError> {
        if validate_id(id).is_err() {
            warn!(module = %id, "module id is not a valid registry id; not registered");
            return Ok(());
        }
        self.store
            .modify(PUBLISHER, id, None, |current| {
                Ok(match current {
                    Some(r) if r.body.get("rootTopic").and_then(Value::as_str) == Some(root) => {
                        None
                    }
                    Some(r) => {
                        let mut body = object(&r.body);
                        body.insert("rootTopic".into(), root.into());
                        Some(Change::of(r, Value::Object(body)))
                    }
                    None => Some(Change {
                        owner: id.to_string(),
                        body: json!({
                            "id": id,
                            "rootTopic": root,
                            "status": "enabled",
                            "statusUpdateTime": now(),
                        }),
                        ..Default::default()
                    }),
                })
            })
            .await?;
        Ok(())
    }

    pub async fn update_publisher(
        &self,
        id: &str,
        update: PublisherUpdate,
        if_match: Option<&str>,
    ) -> Result<Record, ApiError> {
        validate_id(id)?;
        let status = match update.status.as_deref().map(str::to_ascii_lowercase) {
            None => None,
            Some(s) if s == "enabled" || s == "disabled" => Some(s),
            Some(s) => {
                return Err(ApiError::BadRequest(format!(
                    "status '{s}': use enabled or disabled"
                )))
            }
        };
        if let Some(site) = update.site_id.as_deref().filter(|s| !s.is_empty()) {
            validate_id(site)?;
        }
        let r = self
            .store
            .modify(PUBLISHER, id, if_match, |current| {
                let Some(r) = current else {
                    return Err(ApiError::NotFound(format!("no publisher '{id}'")));
                };
                let mut body = object(&r.body);
                if let Some(site) = &update.site_id {
                    body.insert("siteId".into(), site.clone().into());
                }
                if let Some(key) = &update.api_key {
                    body.insert("apiKey".into(), key.clone().into());
                }
                if let Some(s) = &status {
                    if body.get("status").and_then(Value::as_str) != Some(s) {
                        body.insert("statusUpdateTime".into(), now().into());
                    }
                    body.insert("status".into(), s.clone().into());
                }
                if let Some(reason) = &update.status_reason {
                    body.insert("statusReason".into(), reason.clone().into());
                }
                Ok(Some(Change::of(r, Value::Object(body))))
            })
            .await?;
        r.ok_or_else(|| ApiError::NotFound(format!("no publisher '{id}'")))
    }

    /// A module that may receive requests: known, enabled and online.
    pub async fn usable_module(&self, id: &str) -> Result<(String, String), ApiError> {
        let Some(p) = self.store.get(PUBLISHER, id).await? else {
            return Err(ApiError::NotFound(format!("no publisher '{id}'")));
        };
        if p.body.get("status").and_then(Value::as_str) == Some("disabled") {
            let reason = p
                .body
                .get("statusReason")
                .and_then(Value::as_str)
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            return Err(ApiError::Disabled(format!(
                "publisher '{id}' is disabled{reason}: it gets no requests"
            )));
        }
        let live = self.liveness.get(id);
        if !live.as_ref().is_some_and(|l| l.is_online()) {
            return Err(ApiError::Offline(format!("publisher '{id}' is offline")));
        }
        let root = live
            .map(|l| l.root_topic)
            .or_else(|| {
                p.body
                    .get("rootTopic")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .unwrap_or_else(|| id.to_string());
        Ok((id.to_string(), root))
    }

    /// The module to run a registration on: the one named, or the only one usable.
    pub async fn discoverer(&self, named: Option<&str>) -> Result<(String, String), ApiError> {
        if let Some(id) = named.filter(|s| !s.is_empty()) {
            validate_id(id)?;
            return self.usable_module(id).await;
        }
        let mut usable = Vec::new();
        for id in self.liveness.online() {
            if let Ok(m) = self.usable_module(&id).await {
                usable.push(m);
            }
        }
        match usable.len() {
            1 => Ok(usable.remove(0)),
            0 => Err(ApiError::Offline(
                "no enabled publisher is online to run the registration".into(),
            )),
            n => Err(ApiError::BadRequest(format!(
                "{n} publishers are online: choose one with ?discovererId="
            ))),
        }
    }

    /// Endpoint id → its module and connection; refuses disabled and offline modules.
    pub async fn route(&self, endpoint_id: &str) -> Result<Route, ApiError> {
        validate_id(endpoint_id)?;
        let Some(ep) = self.store.get(ENDPOINT, endpoint_id).await? else {
            return Err(ApiError::NotFound(format!("no endpoint '{endpoint_id}'")));
        };
        let app_id = ep
            .body
            .get("applicationId")
            .and_then(Value::as_str)
            .unwrap_or(&ep.parent);
        if let Some(app) = self.store.get(APPLICATION, app_id).await? {
            if is_disabled(&app.body) {
                return Err(ApiError::Disabled(format!(
                    "application '{app_id}' is disabled: its endpoint '{endpoint_id}' gets no \
                     requests until it is enabled"
                )));
            }
        }
        let module = ep.owner.clone();
        if module.is_empty() {
            return Err(ApiError::Conflict(format!(
                "no publisher serves endpoint '{endpoint_id}'"
            )));
        }
        let (module, root) = self.usable_module(&module).await?;
        let endpoint = ep.body["registration"]["endpoint"].clone();
        Ok(Route {
            module,
            root,
            connection: json!({ "endpoint": endpoint }),
        })
    }

    // ---- applications and endpoints ----------------------------------------------------

    /// Upserts an application and its endpoints found by `discoverer`; returns the
    /// application id. `seen` tags the discovery run.
    pub async fn register(
        &self,
        discoverer: &str,
        reg: ApplicationRegistrationModel,
        seen: &str,
    ) -> Result<String, ApiError> {
        let app = reg.application;
        let endpoints = reg.endpoints.unwrap_or_default();
        let (app_id, disabled) = self.upsert_application(discoverer, app, seen).await?;
        for ep in endpoints {
            self.upsert_endpoint(discoverer, &app_id, ep, seen, disabled)
                .await?;
        }
        Ok(app_id)
    }

    async fn upsert_application(
        &self,
        discoverer: &str,
        mut app: ApplicationInfoModel,
        seen: &str,
    ) -> Result<(String, bool), ApiError> {
        if app.application_uri.is_empty() {
            return Err(ApiError::BadRequest(
                "application without applicationUri".into(),
            ));
        }
        let site = app
            .site_id
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| discoverer.to_string());
        let id = application_id(
            Some(&site),
            &app.application_uri,
            app.application_type.as_str(),
        );
        app.application_id = id.clone();
        app.site_id = Some(site);
        app.discoverer_id = Some(discoverer.to_string());
        app.not_seen_since = None;
        app.updated = None;
        let written = self
            .store
            .modify(APPLICATION, &id, None, |current| {
                let mut app = app.clone();
                if let Some(r) = current {
                    let old: ApplicationInfoModel =
                        serde_json::from_value(r.body.clone()).unwrap_or_default();
                    app.created = old.created;
                    app.discovery_urls = union(old.discovery_urls, app.discovery_urls.take());
                    app.host_addresses = union(old.host_addresses, app.host_addresses.take());
                } else {
                    app.created = Some(iiot_api::OperationContextModel {
                        authority_id: Some(discoverer.to_string()),
                        time: Some(now()),
                    });
                }
                let mut body =
                    serde_json::to_value(&app).map_err(|e| ApiError::Internal(e.to_string()))?;
                if let (Some(r), Value::Object(o)) = (current, &mut body) {
                    for key in KEPT_ON_REDISCOVERY {
                        if let Some(v) = r.body.get(*key) {
                            o.insert((*key).into(), v.clone());
                        }
                    }
                    // Found again, but still disabled: it stays out of queries.
                    if is_disabled(&r.body) {
                        if let Some(v) = r.body.get("notSeenSince") {
                            o.insert("notSeenSince".into(), v.clone());
                        }
                    }
                }
                Ok(Some(Change {
                    owner: discoverer.to_string(),
                    parent: String::new(),
                    seen: seen.to_string(),
                    body,
                }))
            })
            .await?;
        let disabled = written.is_some_and(|r| is_disabled(&r.body));
        Ok((id, disabled))
    }

    async fn upsert_endpoint(
        &self,
        discoverer: &str,
        app_id: &str,
        mut ep: EndpointRegistrationModel,
        seen: &str,
        app_disabled: bool,
    ) -> Result<(), ApiError> {
        let Some(endpoint) = ep.endpoint.clone() else {
            return Ok(());
        };
        let url = if endpoint.url.is_empty() {
            ep.endpoint_url.clone().unwrap_or_default()
        } else {
            endpoint.url.clone()
        };
        let id = endpoint_id(
            app_id,
            &url,
            endpoint.security_mode.map(|m| m.as_str()),
            endpoint.security_policy.as_deref(),
        );
        ep.id = id.clone();
        ep.discoverer_id = Some(discoverer.to_string());
        ep.endpoint_url = Some(url);
        let registration =
            serde_json::to_value(&ep).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.store
            .modify(ENDPOINT, &id, None, |current| {
                let mut body = current.map(|r| object(&r.body)).unwrap_or_default();
                body.insert("applicationId".into(), app_id.into());
                body.insert("registration".into(), registration.clone());
                if app_disabled {
                    body.insert(DISABLED.into(), true.into());
                    if body.get("notSeenSince").is_none_or(Value::is_null) {
                        body.insert("notSeenSince".into(), now().into());
                    }
                } else {
                    body.remove("notSeenSince");
                    body.remove(DISABLED);
                }
                Ok(Some(Change {
                    owner: discoverer.to_string(),
                    parent: app_id.to_string(),
                    seen: seen.to_string(),
                    body: Value::Object(body),
                }))
            })
            .await?;
        Ok(())
    }

    /// After a full discovery run of `discoverer`: stamps `notSeenSince` on its applications
    /// and endpoints that the run (tagged `seen`) did not find.
    pub async fn mark_not_seen(&self, discoverer: &str, seen: &str) -> Result<usize, ApiError> {
        let stamp = now();
        let mut marked = 0;
        for kind in [APPLICATION, ENDPOINT] {
            let records = self
                .store
                .all(
                    kind,
                    Filter {
                        owner: Some(discoverer),
                        parent: None,
                    },
                )
                .await?;
            for r in records {
                if r.seen == seen || r.body.get("notSeenSince").is_some_and(|v| !v.is_null()) {
                    continue;
                }
                self.store
                    .modify(kind, &r.id, None, |current| {
                        let Some(c) = current else { return Ok(None) };
                        if c.seen == seen {
                            return Ok(None);
                        }
                        let mut body = object(&c.body);
                        body.insert("notSeenSince".into(), stamp.clone().into());
                        Ok(Some(Change::of(c, Value::Object(body))))
                    })
                    .await?;
                marked += 1;
            }
        }
        Ok(marked)
    }

    /// PATCH of an application: the members given replace the stored ones; a new etag.
    pub async fn update_application(
        &self,
        id: &str,
        update: ApplicationUpdate,
        by: &str,
        if_match: Option<&str>,
    ) -> Result<Record, ApiError> {
        use base64::Engine;
        validate_id(id)?;
        if let Some(c) = update.certificate.as_deref().filter(|c| !c.is_empty()) {
            base64::engine::general_purpose::STANDARD
                .decode(c.trim())
                .map_err(|_| ApiError::BadRequest("certificate is not base64 (DER)".into()))?;
        }
        if let Some(url) = update
            .discovery_urls
            .iter()
            .flatten()
            .find(|u| !u.starts_with("opc.tcp://") && !u.starts_with("http"))
        {
            return Err(ApiError::BadRequest(format!(
                "discoveryUrls: '{url}' is not an opc.tcp:// or http(s):// URL"
            )));
        }
        let updated = json!({ "authorityId": by, "time": now() });
        let r = self
            .store
            .modify(APPLICATION, id, if_match, |current| {
                let Some(r) = current else {
                    return Err(ApiError::NotFound(format!("no application '{id}'")));
                };
                let mut body = object(&r.body);
                let mut set = |key: &str, v: &Option<String>| {
                    if let Some(v) = v {
                        body.insert(key.into(), v.clone().into());
                    }
                };
                set("productUri", &update.product_uri);
                set("applicationName", &update.application_name);
                set("locale", &update.locale);
                set("certificate", &update.certificate);
                set("discoveryProfileUri", &update.discovery_profile_uri);
                set("gatewayServerUri", &update.gateway_server_uri);
                if let Some(caps) = &update.capabilities {
                    body.insert("capabilities".into(), json!(caps));
                }
                if let Some(urls) = &update.discovery_urls {
                    body.insert("discoveryUrls".into(), json!(urls));
                }
                if let Some(names) = &update.localized_names {
                    let mut map = body
                        .get("localizedNames")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    for (locale, name) in names {
                        match name {
                            Some(n) => map.insert(locale.clone(), n.clone().into()),
                            None => map.remove(locale),
                        };
                    }
                    body.insert("localizedNames".into(), Value::Object(map));
                }
                body.insert("updated".into(), updated.clone());
                Ok(Some(Change::of(r, Value::Object(body))))
            })
            .await?;
        r.ok_or_else(|| ApiError::NotFound(format!("no application '{id}'")))
    }

    /// Enables or disables an application and its endpoints (see [`DISABLED`]). Doing it
    /// twice changes nothing, not even the etag. Twin requests check the application itself
    /// (in [`Registry::route`]), so they are refused from the moment this writes it, even
    /// while its endpoints are still being marked.
    pub async fn set_application_enabled(
        &self,
        id: &str,
        enabled: bool,
        by: &str,
        if_match: Option<&str>,
    ) -> Result<Record, ApiError> {
        validate_id(id)?;
        let stamp = now();
        let toggle = |body: &Value| -> Option<Value> {
            if is_disabled(body) != enabled {
                return None; // already in the state asked for
            }
            let mut o = object(body);
            if enabled {
                o.remove(DISABLED);
                o.remove("notSeenSince");
            } else {
                o.insert(DISABLED.into(), true.into());
                if o.get("notSeenSince").is_none_or(Value::is_null) {
                    o.insert("notSeenSince".into(), stamp.clone().into());
                }
            }
            Some(Value::Object(o))
        };
        let r = self
            .store
            .modify(APPLICATION, id, if_match, |current| {
                let Some(r) = current else {
                    return Err(ApiError::NotFound(format!("no application '{id}'")));
                };
                Ok(toggle(&r.body).map(|body| {
                    let mut body = object(&body);
                    body.insert(
                        "updated".into(),
                        json!({ "authorityId": by, "time": stamp }),
                    );
                    Change::of(r, Value::Object(body))
                }))
            })
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no application '{id}'")))?;
        let endpoints = self
            .store
            .all(
                ENDPOINT,
                Filter {
                    owner: None,
                    parent: Some(id),
                },
            )
            .await?;
        for ep in endpoints {
            self.store
                .modify(ENDPOINT, &ep.id, None, |current| {
                    Ok(current.and_then(|c| toggle(&c.body).map(|b| Change::of(c, b))))
                })
                .await?;
        }
        debug!(application = %id, enabled, "application state set");
        Ok(r)
    }

    /// One page of a query; the token (if any) continues it.
    pub async fn query(
        &self,
        query: RegistryQuery,
        after: &str,
        page_size: Option<usize>,
    ) -> Result<(Vec<Record>, Option<String>), ApiError> {
        query.validate()?;
        let connected = |r: &Record| self.liveness.get(&r.id).is_some_and(|l| l.is_online());
        let scan = self
            .store
            .scan(query.kind(), after, page_size, |r| {
                query.matches(r, connected)
            })
            .await?;
        let token = scan
            .resume_after
            .map(|after| QueryToken { after, query }.encode());
        Ok((scan.items, token))
    }

    /// Deletes an application and its endpoints.
    pub async fn delete_application(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ApiError> {
        validate_id(id)?;
        self.store.delete(APPLICATION, id, if_match).await?;
        self.store.delete_children(ENDPOINT, id).await?;
        Ok(())
    }

    /// Deletes the applications (and their endpoints) not seen for at least `age`; returns
    /// how many went.
    pub async fn purge_not_seen(&self, age: std::time::Duration) -> Result<usize, ApiError> {
        let cutoff = time::OffsetDateTime::now_utc() - age;
        let mut purged = 0;
        for r in self.store.all(APPLICATION, Filter::default()).await? {
            let since = r
                .body
                .get("notSeenSince")
                .and_then(Value::as_str)
                .and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                });
            if since.is_some_and(|t| t <= cutoff) {
                match self.delete_application(&r.id, Some(&r.etag)).await {
                    Ok(()) => purged += 1,
                    // Seen again or changed meanwhile: it stays.
                    Err(ApiError::PreconditionFailed(_) | ApiError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(purged)
    }

    /// Applies what the MQTT task received.
    pub async fn apply(&self, event: ModuleEvent) -> Result<(), ApiError> {
        match event {
            ModuleEvent::State { id, root } => self.publisher_seen(&id, &root).await,
            ModuleEvent::Discovery { root, event } => {
                let discoverer = event
                    .registration
                    .as_ref()
                    .and_then(|r| r.discoverer_id.clone())
                    .or_else(|| {
                        event
                            .application
                            .as_ref()
                            .and_then(|a| a.discoverer_id.clone())
                    })
                    .unwrap_or(root);
                let seen = format!("{discoverer}@{}", event.time_stamp);
                if let (Some(app), Some(ep)) = (event.application, event.registration) {
                    self.register(
                        &discoverer,
                        ApplicationRegistrationModel {
                            application: app,
                            endpoints: Some(vec![ep]),
                        },
                        &seen,
                    )
                    .await?;
                } else if let Some(result) = event.result {
                    // A scan's closing event: what it did not find is not seen any more. A
                    // registration of one URL says nothing about other servers.
                    if result.register_only != Some(true) {
                        let n = self.mark_not_seen(&discoverer, &seen).await?;
                        debug!(%discoverer, n, "marked not seen");
                    }
                }
                Ok(())
            }
        }
    }
}

/// `notSeenFor`: milliseconds, or a .NET TimeSpan `[d.]hh:mm:ss[.fff]`.
pub fn parse_span(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Some(std::time::Duration::from_millis(ms));
    }
    let (days, rest) = match s.split_once('.') {
        Some((d, r)) if r.contains(':') && !d.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, s),
    };
    let mut parts = rest.split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let sec: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || m >= 60 || !(0.0..60.0).contains(&sec) {
        return None;
    }
    let whole = (days * 24 + h) * 3600 + m * 60;
    Some(std::time::Duration::from_secs(whole) + std::time::Duration::from_secs_f64(sec))
}

fn union(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    match (a, b) {
        (None, None) => None,
        (a, b) => {
            let mut out = a.unwrap_or_default();
            for s in b.unwrap_or_default() {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_span;
    use std::time::Duration;

    #[test]
    fn spans_in_milliseconds_or_timespan_form() {
        assert_eq!(parse_span("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_span("00:10:00"), Some(Duration::from_secs(600)));
        assert_eq!(
            parse_span("1.02:00:00"),
            Some(Duration::from_secs(26 * 3600))
        );
        assert_eq!(parse_span("00:00:01.5"), Some(Duration::from_millis(1500)));
        for bad in ["", "x", "00:61:00", "1:2", "-5"] {
            assert_eq!(parse_span(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod registry_tests;
