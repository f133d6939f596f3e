//! Tightens the generated document's inputs to what the handlers accept where the models'
//! Rust types say less: a registration needs an absolute `applicationUri` and an
//! `applicationType` (an update may leave both out), a group's `issuedLifetime` is 1 day up
//! to the CA lifetime, and `certificateType` names one of the certificate types.

use serde_json::{json, Value};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};

/// `validate::is_absolute_uri`: a scheme, `:`, then no whitespace or control character.
const ABSOLUTE_URI_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s\x00-\x1f\x7f-\x9f]+$";

/// The certificate types `CertType::parse` knows, by their OPC UA names.
const CERTIFICATE_TYPES: [&str; 3] = [
    "RsaSha256ApplicationCertificateType",
    "EccNistP256ApplicationCertificateType",
    "EccNistP384ApplicationCertificateType",
];

/// Names of the registration and update bodies' schemas (one Rust type, two rule sets).
const REGISTRATION: &str = "ApplicationRegistrationRequest";
const UPDATE: &str = "ApplicationUpdateRequest";

fn typed<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Option<T> {
    serde_json::from_value(v)
        .map_err(|e| tracing::error!(what, error = %e, "OpenAPI input rule not applied"))
        .ok()
}

/// The rules, with the CA lifetime new groups get from this configuration.
pub struct InputRules {
    pub ca_lifetime_days: i64,
}

/// A discovery URL as `validate::is_discovery_url` takes it: an OPC UA transport scheme and a
/// host.
const DISCOVERY_URL_PATTERN: &str = r"^(opc\.tcp|opc\.https|opc\.wss|https|http)://[^/:\s\x00-\x1f\x7f-\x9f][^\s\x00-\x1f\x7f-\x9f]*$";

/// `POST /v2/applications` as `validate::application` checks a new registration: an absolute
/// `applicationUri`, an `applicationType`, a non-blank name (in `applicationNames`, or
/// `applicationName` when there is no list), a discovery URL for every type but `Client`,
/// capability identifiers of up to 16 letters and digits, names of up to 256 characters.
fn application_schema(new: bool) -> Value {
    let uri = json!({ "type": "string", "maxLength": 2048, "pattern": ABSOLUTE_URI_PATTERN });
    let name = json!({ "type": "string", "maxLength": 256, "pattern": r"\S" });
    let mut body = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "applicationUri": if new { uri.clone() } else { json!({ "oneOf": [uri, { "type": "null" }] }) },
            "applicationType": if new {
                json!({ "type": "string", "enum": APPLICATION_TYPES })
            } else {
                json!({ "oneOf": [{ "type": "string", "enum": APPLICATION_TYPES }, { "type": "null" }] })
            },
            "applicationNames": { "oneOf": [{ "type": "null" }, { "type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["text"],
                "properties": { "locale": { "type": "string" }, "text": name }
            } }] },
            // Only read when there is no `applicationNames` list.
            "applicationName": { "type": ["string", "null"] },
            "productUri": { "oneOf": [uri, { "type": "string", "maxLength": 0 }, { "type": "null" }] },
            "discoveryUrls": { "oneOf": [{ "type": "null" }, { "type": "array", "items": {
                "type": "string", "maxLength": 2048, "pattern": DISCOVERY_URL_PATTERN
            } }] },
            "serverCapabilities": { "oneOf": [{ "type": "null" }, { "type": "array", "items": {
                "type": "string", "pattern": "^[A-Za-z0-9]{1,16}$"
            } }] },
        },
    });
    // Every type but Client needs a discovery URL (an update that names a server type says
    // its URLs too, as the record it changes may have none).
    let server_urls = json!({ "anyOf": [
        { "type": "object", "properties": { "applicationType": {
            "type": ["string", "null"], "enum": ["Client", null]
        } } },
        { "type": "object", "required": ["discoveryUrls"],
          "properties": { "discoveryUrls": {
              "type": "array", "items": { "type": "string" }, "minItems": 1
          } } },
    ] });
    if !new {
        // A lone `applicationName` replaces the names, so it must not be blank.
        let names = json!({ "anyOf": [
            { "type": "object", "properties": { "applicationName": { "type": "null" } } },
            { "type": "object", "required": ["applicationNames"],
              "properties": { "applicationNames": { "type": "array", "items": { "type": "object" } } } },
            { "type": "object", "properties": { "applicationName": name } },
        ] });
        // An update that names no type may empty the URLs: a client's are cleared, a server's
        // refused with 409 (the body is well-formed; the record it meets is a server).
        return json!({ "allOf": [body, names, server_urls] });
    }
    body["required"] = json!(["applicationUri", "applicationType"]);
    json!({ "allOf": [
        body,
        { "anyOf": [
            { "type": "object", "required": ["applicationNames"],
              "properties": { "applicationNames": { "type": "array", "items": { "type": "object" } } } },
            { "type": "object", "required": ["applicationName"],
              "properties": { "applicationName": name, "applicationNames": { "type": "null" } } },
        ] },
        server_urls,
    ] })
}

const APPLICATION_TYPES: [&str; 4] = ["Server", "Client", "ClientAndServer", "DiscoveryServer"];

fn json_body(schema: Value) -> Option<RequestBody> {
    typed(
        "body",
        json!({ "required": true, "content": { "application/json": { "schema": schema } } }),
    )
}

impl InputRules {
    fn tighten(&self, method: &str, path: &str, op: &mut Operation) {
        for p in op.parameters.iter_mut().flatten() {
            let RefOr::T(p) = p else { continue };
            if p.parameter_in == ParameterIn::Query && p.name == "certificateType" {
                p.schema = typed(
                    &p.name,
                    json!({ "type": "string", "enum": CERTIFICATE_TYPES }),
                );
            }
        }
        let body = match (method, path) {
            ("post", "/v2/applications") => {
                json_body(json!({ "$ref": format!("#/components/schemas/{REGISTRATION}") }))
            }
            ("put", "/v2/applications/{id}") | ("patch", "/v2/applications/{id}") => {
                json_body(json!({ "$ref": format!("#/components/schemas/{UPDATE}") }))
            }
            ("post", "/v2/groups/{id}") => json_body(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "issuedLifetime": { "oneOf": [
                        { "type": "integer", "minimum": 1, "maximum": self.ca_lifetime_days,
                          "description": "Days; at most the group's CA lifetime" },
                        { "type": "null" }
                    ] },
                    "autoApprove": { "type": ["boolean", "null"] }
                }
            })),
            _ => None,
        };
        if let Some(body) = body {
            op.request_body = Some(RefOr::T(body));
        }
    }
}

impl utoipa::Modify for InputRules {
    fn modify(&self, openapi: &mut OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            for (name, new) in [(REGISTRATION, true), (UPDATE, false)] {
                if let Some(s) = typed::<RefOr<Schema>>(name, application_schema(new)) {
                    components.schemas.insert(name.to_string(), s);
                }
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ] {
                if let Some(op) = op {
                    self.tighten(method, path, op);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::Modify;

    #[test]
    fn the_document_carries_the_rules() {
        let mut doc = <super::super::openapi::ApiDoc as utoipa::OpenApi>::openapi();
        InputRules {
            ca_lifetime_days: 3650,
        }
        .modify(&mut doc);
        let v = serde_json::to_value(&doc).unwrap();
        let reg = &v["components"]["schemas"][REGISTRATION]["allOf"];
        assert_eq!(
            reg[0]["required"],
            json!(["applicationUri", "applicationType"])
        );
        assert_eq!(reg[1]["anyOf"][1]["required"][0], "applicationName");
        assert_eq!(
            reg[2]["anyOf"][0]["properties"]["applicationType"]["enum"][0],
            "Client"
        );
        assert_eq!(
            reg[2]["anyOf"][1]["properties"]["discoveryUrls"]["minItems"],
            1
        );
        let update = &v["components"]["schemas"][UPDATE]["allOf"];
        assert!(update[0]["properties"]["applicationNames"].is_object());
        let body = &v["paths"]["/v2/applications"]["post"]["requestBody"];
        assert!(body["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .is_some_and(|r| r.ends_with(REGISTRATION)));
        let group = &v["paths"]["/v2/groups/{id}"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert_eq!(
            group["properties"]["issuedLifetime"]["oneOf"][0]["maximum"],
            3650
        );
        let trust = &v["paths"]["/v2/groups/{id}/trustlist"]["get"]["parameters"];
        let ct = trust
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "certificateType"))
            .unwrap();
        assert_eq!(ct["schema"]["enum"][0], CERTIFICATE_TYPES[0]);
    }

    #[test]
    fn absolute_uri_pattern_is_is_absolute_uri() {
        let re = regex::Regex::new(ABSOLUTE_URI_PATTERN).unwrap();
        for s in ["urn:plant:line1:plc", "http://x", "a+b.c-d:x"] {
            assert!(re.is_match(s) && crate::validate::is_absolute_uri(s), "{s}");
        }
        for s in ["", "urn:", "1a:b", "urn:a b", "noscheme", "urn:a\u{85}"] {
            assert!(
                !re.is_match(s) && !crate::validate::is_absolute_uri(s),
                "{s}"
            );
        }
    }
}
