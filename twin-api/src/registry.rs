//! The registry of modules (publishers), applications and endpoints: the rules on top of the
//! store. Discovery results become applications and endpoints with Azure's ids; an endpoint
//! resolves to the module that serves it and the connection model to send that module.

use std::sync::Arc;

use iiot_module::api::{
    ApplicationInfoModel, ApplicationRegistrationModel, EndpointRegistrationModel,
};
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use crate::error::ApiError;
use crate::ids::{application_id, endpoint_id, validate_id};
use crate::liveness::LivenessTable;
use crate::rpc::ModuleEvent;
use crate::store::{Change, Filter, Record, Store, APPLICATION, ENDPOINT, PUBLISHER};

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
        let app_id = self.upsert_application(discoverer, app, seen).await?;
        for ep in endpoints {
            self.upsert_endpoint(discoverer, &app_id, ep, seen).await?;
        }
        Ok(app_id)
    }

    async fn upsert_application(
        &self,
        discoverer: &str,
        mut app: ApplicationInfoModel,
        seen: &str,
    ) -> Result<String, ApiError> {
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
        self.store
            .modify(APPLICATION, &id, None, |current| {
                let mut app = app.clone();
                if let Some(r) = current {
                    let old: ApplicationInfoModel =
                        serde_json::from_value(r.body.clone()).unwrap_or_default();
                    app.created = old.created;
                    app.discovery_urls = union(old.discovery_urls, app.discovery_urls.take());
                    app.host_addresses = union(old.host_addresses, app.host_addresses.take());
                } else {
                    app.created = Some(iiot_module::api::OperationContextModel {
                        authority_id: Some(discoverer.to_string()),
                        time: Some(now()),
                    });
                }
                let body =
                    serde_json::to_value(&app).map_err(|e| ApiError::Internal(e.to_string()))?;
                Ok(Some(Change {
                    owner: discoverer.to_string(),
                    parent: String::new(),
                    seen: seen.to_string(),
                    body,
                }))
            })
            .await?;
        Ok(id)
    }

    async fn upsert_endpoint(
        &self,
        discoverer: &str,
        app_id: &str,
        mut ep: EndpointRegistrationModel,
        seen: &str,
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
                body.remove("notSeenSince");
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
