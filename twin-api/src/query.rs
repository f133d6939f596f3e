//! The registry queries (`/registry/v2/{applications,endpoints,publishers}/query`): the query
//! models of the 2.9 web API, which stored records they match, and the continuation tokens
//! that carry a query from one page to the next.
//!
//! Matching runs on the stored JSON, not in SQL (see [`crate::store::Store::scan`]). Rules,
//! where the web API leaves them open:
//! - a field that is absent or null does not filter;
//! - URIs, names, locales, capabilities, certificate thumbprints and security policies compare
//!   without regard to ASCII case; ids (`discovererId`, `siteOrGatewayId`, `applicationId`)
//!   are case-sensitive, as everywhere in the registry;
//! - records with `notSeenSince` (not found by the last discovery run, or disabled) are left
//!   out unless `includeNotSeenSince` is true.
//!
//! A query's continuation token holds the query itself, so the token also continues the query
//! when it is given to the plain list route (`GET /registry/v2/applications?continuationToken=`),
//! as the web API says a client may do.

use base64::Engine;
use iiot_api::{ApplicationType, SecurityMode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::store::{Record, APPLICATION, ENDPOINT, PUBLISHER};

/// The connectivity states an endpoint query may name (`EndpointConnectivityState`).
const ENDPOINT_STATES: &[&str] = &[
    "Connecting",
    "NotReachable",
    "Busy",
    "NoTrust",
    "CertificateInvalid",
    "Ready",
    "Error",
    "Disconnected",
    "Unauthorized",
];

/// `ApplicationRegistrationQueryModel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<ApplicationType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_profile_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_server_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_or_gateway_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_not_seen_since: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discoverer_id: Option<String>,
}

/// `EndpointRegistrationQueryModel` (2.9.15 has `endpointState`, no `activated`/`connected`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_mode: Option<SecurityMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_policy: Option<String>,
    /// Endpoints are not activated by this registry, so no record carries a state: a query
    /// naming one matches nothing rather than pretending every endpoint is in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_not_seen_since: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discoverer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_or_gateway_id: Option<String>,
}

/// `PublisherQueryModel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublisherQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
}

/// A query of one record kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RegistryQuery {
    Applications(ApplicationQuery),
    Endpoints(EndpointQuery),
    Publishers(PublisherQuery),
}

impl RegistryQuery {
    /// The record kind the query scans.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryQuery::Applications(_) => APPLICATION,
            RegistryQuery::Endpoints(_) => ENDPOINT,
            RegistryQuery::Publishers(_) => PUBLISHER,
        }
    }

    /// Refuses what can never match because it is misspelt, so a typo is a 400 rather than
    /// an empty list.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let RegistryQuery::Endpoints(q) = self {
            if let Some(s) = &q.endpoint_state {
                if !ENDPOINT_STATES.iter().any(|k| k.eq_ignore_ascii_case(s)) {
                    return Err(ApiError::BadRequest(format!(
                        "endpointState '{s}': use one of {}",
                        ENDPOINT_STATES.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether the record matches; `connected` is the live state of a publisher (publishers
    /// only: it is not stored).
    pub fn matches(&self, r: &Record, connected: impl Fn(&Record) -> bool) -> bool {
        match self {
            RegistryQuery::Applications(q) => application_matches(q, r),
            RegistryQuery::Endpoints(q) => endpoint_matches(q, r),
            RegistryQuery::Publishers(q) => {
                q.site_id
                    .as_deref()
                    .is_none_or(|w| str_of(&r.body, "siteId") == Some(w))
                    && q.connected.is_none_or(|want| connected(r) == want)
            }
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Case-insensitive equality of a string member, `want = None` matching anything.
fn text_is(v: &Value, key: &str, want: Option<&str>) -> bool {
    want.is_none_or(|w| str_of(v, key).is_some_and(|s| s.eq_ignore_ascii_case(w)))
}

fn not_seen(v: &Value) -> bool {
    v.get("notSeenSince").is_some_and(|s| !s.is_null())
}

/// The application's names with their locales: the default name (locale `en` when none is
/// given, as the model says) and every localized name.
fn names(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(name) = str_of(v, "applicationName") {
        out.push((str_of(v, "locale").unwrap_or("en").to_string(), name.into()));
    }
    for (locale, name) in v
        .get("localizedNames")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(name) = name.as_str() {
            out.push((locale.clone(), name.into()));
        }
    }
    out
}

/// `Client` also finds `ClientAndServer` applications, and so does `Server`: a query for
/// servers wants every application that serves.
fn type_matches(want: ApplicationType, stored: Option<&str>) -> bool {
    let Some(stored) = stored else {
        return false;
    };
    let is = |t: ApplicationType| stored.eq_ignore_ascii_case(t.as_str());
    match want {
        ApplicationType::Client => {
            is(ApplicationType::Client) || is(ApplicationType::ClientAndServer)
        }
        ApplicationType::Server => {
            is(ApplicationType::Server) || is(ApplicationType::ClientAndServer)
        }
        other => is(other),
    }
}

fn application_matches(q: &ApplicationQuery, r: &Record) -> bool {
    let v = &r.body;
    if q.include_not_seen_since != Some(true) && not_seen(v) {
        return false;
    }
    if let Some(t) = q.application_type {
        if !type_matches(t, str_of(v, "applicationType")) {
            return false;
        }
    }
    if !(text_is(v, "applicationUri", q.application_uri.as_deref())
        && text_is(v, "productUri", q.product_uri.as_deref())
        && text_is(v, "discoveryProfileUri", q.discovery_profile_uri.as_deref())
        && text_is(v, "gatewayServerUri", q.gateway_server_uri.as_deref()))
    {
        return false;
    }
    // A name is looked for in the locale asked for, or in any locale; a locale alone finds
    // applications that have a name in it.
    let locale_ok = |l: &str| {
        q.locale
            .as_deref()
            .is_none_or(|w| l.eq_ignore_ascii_case(w))
    };
    if q.application_name.is_some() || q.locale.is_some() {
        let found = names(v).iter().any(|(l, n)| {
            locale_ok(l)
                && q.application_name
                    .as_deref()
                    .is_none_or(|w| n.eq_ignore_ascii_case(w))
        });
        if !found {
            return false;
        }
    }
    if let Some(cap) = &q.capability {
        let has = v
            .get("capabilities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|c| c.eq_ignore_ascii_case(cap));
        if !has {
            return false;
        }
    }
    let discoverer = str_of(v, "discovererId").unwrap_or(&r.owner);
    if q.discoverer_id.as_deref().is_some_and(|d| d != discoverer) {
        return false;
    }
    if let Some(id) = q.site_or_gateway_id.as_deref() {
        if str_of(v, "siteId") != Some(id) && discoverer != id {
            return false;
        }
    }
    true
}

/// An endpoint URL as compared: without trailing `/`, in lower case.
pub fn normalized_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn endpoint_matches(q: &EndpointQuery, r: &Record) -> bool {
    let v = &r.body;
    if q.include_not_seen_since != Some(true) && not_seen(v) {
        return false;
    }
    let reg = &v["registration"];
    let ep = &reg["endpoint"];
    if let Some(url) = &q.url {
        let want = normalized_url(url);
        let found = [str_of(ep, "url"), str_of(reg, "endpointUrl")]
            .into_iter()
            .flatten()
            .chain(
                ep.get("alternativeUrls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str),
            )
            .any(|u| normalized_url(u) == want);
        if !found {
            return false;
        }
    }
    if !text_is(ep, "certificate", q.certificate.as_deref()) {
        return false;
    }
    let mode = str_of(ep, "securityMode");
    let mode_ok = match q.security_mode {
        None | Some(SecurityMode::Best) => true,
        Some(SecurityMode::NotNone) => {
            mode.is_some_and(|m| !m.eq_ignore_ascii_case(SecurityMode::None.as_str()))
        }
        Some(want) => mode.is_some_and(|m| m.eq_ignore_ascii_case(want.as_str())),
    };
    if !mode_ok {
        return false;
    }
    if let Some(want) = &q.security_policy {
        // The full policy URI, or its short name after `#`.
        let ok = str_of(ep, "securityPolicy").is_some_and(|p| {
            p.eq_ignore_ascii_case(want)
                || p.rsplit_once('#')
                    .is_some_and(|(_, short)| short.eq_ignore_ascii_case(want))
        });
        if !ok {
            return false;
        }
    }
    if !text_is(v, "endpointState", q.endpoint_state.as_deref()) {
        return false;
    }
    let application = str_of(v, "applicationId").unwrap_or(&r.parent);
    if q.application_id
        .as_deref()
        .is_some_and(|a| a != application)
    {
        return false;
    }
    let discoverer = str_of(reg, "discovererId").unwrap_or(&r.owner);
    if q.discoverer_id.as_deref().is_some_and(|d| d != discoverer) {
        return false;
    }
    if let Some(id) = q.site_or_gateway_id.as_deref() {
        if str_of(reg, "siteId") != Some(id) && discoverer != id {
            return false;
        }
    }
    true
}

/// Where a paged query stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryToken {
    pub after: String,
    pub query: RegistryQuery,
}

impl QueryToken {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// `Ok(None)` for a plain list token (an id, which never starts with `{`).
    pub fn decode(token: &str) -> Result<Option<QueryToken>, ApiError> {
        let bad = || ApiError::BadRequest("continuationToken is not valid".into());
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| bad())?;
        if bytes.first() != Some(&b'{') {
            return Ok(None);
        }
        let t: QueryToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        t.query.validate()?;
        Ok(Some(t))
    }
}

/// The query-string form of a query (`GET …/query?applicationType=Server&pageSize=10`): the
/// members that are booleans in the model are read as booleans, the rest as strings, and the
/// model is read from that, so the GET and POST forms accept exactly the same values.
pub fn from_query_pairs<T: serde::de::DeserializeOwned>(
    pairs: Vec<(String, String)>,
    booleans: &[&str],
) -> Result<T, ApiError> {
    let mut map = Map::new();
    for (k, v) in pairs {
        let value = if booleans.contains(&k.as_str()) {
            match v.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "{k} '{v}': use true or false"
                    )))
                }
            }
        } else {
            Value::String(v)
        };
        if map.insert(k.clone(), value).is_some() {
            return Err(ApiError::BadRequest(format!("{k} is given twice")));
        }
    }
    serde_json::from_value(Value::Object(map))
        .map_err(|e| ApiError::BadRequest(format!("query is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(kind: &str, owner: &str, parent: &str, body: Value) -> Record {
        Record {
            kind: kind.into(),
            id: "x".into(),
            owner: owner.into(),
            parent: parent.into(),
            generation_id: "g".into(),
            etag: "e".into(),
            seen: String::new(),
            body,
        }
    }

    fn app_q(v: Value) -> RegistryQuery {
        RegistryQuery::Applications(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn application_fields_match_as_documented() {
        let app = rec(
            APPLICATION,
            "m1",
            "",
            json!({
                "applicationId": "uas1", "applicationType": "ClientAndServer",
                "applicationUri": "urn:Plant:PLC", "productUri": "http://p/1",
                "applicationName": "Press", "locale": "en-US",
                "localizedNames": { "de": "Presse" }, "capabilities": ["DA", "HD"],
                "discoveryProfileUri": "urn:dp", "gatewayServerUri": "urn:gw",
                "siteId": "site1", "discovererId": "m1"
            }),
        );
        let yes = |q: Value| assert!(app_q(q.clone()).matches(&app, |_| false), "{q}");
        let no = |q: Value| assert!(!app_q(q.clone()).matches(&app, |_| false), "{q}");
        yes(json!({}));
        yes(json!({ "applicationType": "server" }));
        yes(json!({ "applicationType": "Client" }));
        no(json!({ "applicationType": "DiscoveryServer" }));
        yes(json!({ "applicationUri": "URN:plant:plc" }));
        no(json!({ "applicationUri": "urn:plant" }));
        yes(
            json!({ "productUri": "HTTP://P/1", "discoveryProfileUri": "urn:DP", "gatewayServerUri": "urn:gw" }),
        );
        yes(json!({ "applicationName": "press" }));
        yes(json!({ "applicationName": "Presse", "locale": "DE" }));
        no(json!({ "applicationName": "Presse", "locale": "en-US" }));
        yes(json!({ "locale": "de" }));
        no(json!({ "locale": "fr" }));
        yes(json!({ "capability": "hd" }));
        no(json!({ "capability": "AC" }));
        yes(json!({ "siteOrGatewayId": "site1" }));
        yes(json!({ "siteOrGatewayId": "m1", "discovererId": "m1" }));
        no(json!({ "siteOrGatewayId": "SITE1" }));
        no(json!({ "discovererId": "m2" }));

        let mut gone = app.clone();
        gone.body["notSeenSince"] = json!("2026-01-01T00:00:00Z");
        assert!(!app_q(json!({})).matches(&gone, |_| false));
        assert!(app_q(json!({ "includeNotSeenSince": true })).matches(&gone, |_| false));
    }

    #[test]
    fn endpoint_fields_match_as_documented() {
        let ep = rec(
            ENDPOINT,
            "m1",
            "uas1",
            json!({
                "applicationId": "uas1",
                "registration": {
                    "id": "uat1", "discovererId": "m1", "siteId": "site1",
                    "endpointUrl": "opc.tcp://h:4840",
                    "endpoint": {
                        "url": "opc.tcp://H:4840/", "securityMode": "SignAndEncrypt",
                        "securityPolicy": "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256",
                        "certificate": "ABCDEF"
                    }
                }
            }),
        );
        let q = |v: Value| RegistryQuery::Endpoints(serde_json::from_value(v).unwrap());
        let yes = |v: Value| assert!(q(v.clone()).matches(&ep, |_| false), "{v}");
        let no = |v: Value| assert!(!q(v.clone()).matches(&ep, |_| false), "{v}");
        yes(json!({ "url": "opc.tcp://h:4840" }));
        no(json!({ "url": "opc.tcp://h:4841" }));
        yes(json!({ "securityMode": "NotNone" }));
        yes(json!({ "securityMode": "Best" }));
        yes(json!({ "securityMode": "signandencrypt" }));
        no(json!({ "securityMode": "None" }));
        no(json!({ "securityMode": "Sign" }));
        yes(json!({ "securityPolicy": "Basic256Sha256" }));
        no(json!({ "securityPolicy": "None" }));
        yes(json!({ "certificate": "abcdef", "applicationId": "uas1", "discovererId": "m1" }));
        no(json!({ "applicationId": "uas2" }));
        yes(json!({ "siteOrGatewayId": "site1" }));
        no(json!({ "siteOrGatewayId": "m2" }));
        no(json!({ "endpointState": "Ready" }));
        assert!(q(json!({ "endpointState": "Sleeping" }))
            .validate()
            .is_err());
    }

    #[test]
    fn publishers_match_site_and_live_state() {
        let p = rec(PUBLISHER, "p1", "", json!({ "id": "p1", "siteId": "a" }));
        let q = |v: Value| RegistryQuery::Publishers(serde_json::from_value(v).unwrap());
        assert!(q(json!({ "siteId": "a", "connected": true })).matches(&p, |_| true));
        assert!(!q(json!({ "siteId": "A" })).matches(&p, |_| true));
        assert!(!q(json!({ "connected": true })).matches(&p, |_| false));
        assert!(q(json!({ "connected": false })).matches(&p, |_| false));
        assert!(!q(json!({ "siteId": "b" })).matches(&p, |_| true));
    }

    #[test]
    fn tokens_carry_the_query_and_plain_tokens_stay_plain() {
        let t = QueryToken {
            after: "uas9".into(),
            query: app_q(json!({ "applicationUri": "urn:x" })),
        };
        assert_eq!(QueryToken::decode(&t.encode()).unwrap(), Some(t));
        let plain = crate::store::encode_token("uas9");
        assert_eq!(QueryToken::decode(&plain).unwrap(), None);
        assert!(QueryToken::decode("%%%").is_err());
        let junk = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"{nope");
        assert!(QueryToken::decode(&junk).is_err());
    }

    #[test]
    fn query_strings_read_booleans_and_refuse_junk() {
        let q: ApplicationQuery = from_query_pairs(
            vec![
                ("applicationType".into(), "Server".into()),
                ("includeNotSeenSince".into(), "TRUE".into()),
            ],
            &["includeNotSeenSince"],
        )
        .unwrap();
        assert_eq!(q.application_type, Some(ApplicationType::Server));
        assert_eq!(q.include_not_seen_since, Some(true));
        let bad = from_query_pairs::<ApplicationQuery>(
            vec![("includeNotSeenSince".into(), "yes".into())],
            &["includeNotSeenSince"],
        );
        assert!(matches!(bad, Err(ApiError::BadRequest(_))));
        let bad = from_query_pairs::<ApplicationQuery>(
            vec![("applicationType".into(), "Toaster".into())],
            &[],
        );
        assert!(matches!(bad, Err(ApiError::BadRequest(_))));
    }
}
