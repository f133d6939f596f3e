//! Tightens the generated document's inputs to exactly what the handlers accept: the id rules
//! of path parameters, the bounds of `pageSize` and `x-iiot-timeout-ms`, the syntax of
//! `If-Match` and of the continuation tokens this registry issues, and the request bodies'
//! real models. The `#[utoipa::path]` attributes name the parameters; this says what a valid
//! value is, once, so a client (or a fuzzer) can tell a good request from a bad one.

use serde_json::{json, Value};
use utoipa::openapi::content::Content;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};

use super::{IF_MATCH_PATTERN, MAX_TIMEOUT_MS, TIMEOUT_HEADER};
use crate::ids::MAX_ID_LEN;
use crate::store::MAX_PAGE;

/// An id as `ids::validate_id` accepts it.
const ID_PATTERN: &str = r"^[A-Za-z0-9\-:.+%_#*?!(),=@;$']+$";

/// A continuation token as the registry issues it: unpadded base64url (`store::encode_token`,
/// `query::QueryToken::encode`), with the last character carrying no stray bits.
const TOKEN_PATTERN: &str =
    r"^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-][AQgw]|[A-Za-z0-9_-]{2}[AEIMQUYcgkosw048])?$";

/// `notSeenFor`: milliseconds, or `[d.]hh:mm:ss[.fffffff]` (`registry::parse_span`).
const SPAN_PATTERN: &str =
    r"^([0-9]{1,15}|([0-9]{1,5}\.)?[0-9]{1,5}:[0-5]?[0-9]:[0-5]?[0-9](\.[0-9]{1,7})?)$";

/// Standard padded base64 as `registry::update_application` decodes a certificate.
const BASE64_PATTERN: &str =
    r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$";

const APPLICATION_TYPES: [&str; 4] = ["Server", "Client", "ClientAndServer", "DiscoveryServer"];
const SECURITY_MODES: [&str; 5] = ["Best", "Sign", "SignAndEncrypt", "None", "NotNone"];
const ENDPOINT_STATES: [&str; 9] = [
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
const DISCOVERY_MODES: [&str; 5] = ["Off", "Local", "Network", "Fast", "Scan"];

fn nullable(schema: Value) -> Value {
    json!({ "oneOf": [schema, { "type": "null" }] })
}

fn text() -> Value {
    nullable(json!({ "type": "string" }))
}

/// A string enum; `numbered` ones (`iiot_api::string_enum!`) also take their number.
fn one_of(names: &[&str]) -> Value {
    json!({ "type": "string", "enum": names })
}

fn numbered(names: &[&str]) -> Value {
    json!({ "oneOf": [
        one_of(names),
        { "type": "integer", "minimum": 0, "maximum": names.len() - 1 }
    ] })
}

fn object(props: Value, required: &[&str], closed: bool) -> Value {
    let mut o = json!({ "type": "object", "properties": props });
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    if closed {
        o["additionalProperties"] = json!(false);
    }
    o
}

/// The schema of a query parameter the handlers check beyond "a string".
fn query_schema(name: &str) -> Option<Value> {
    Some(match name {
        "pageSize" => json!({ "type": "integer", "minimum": 1, "maximum": MAX_PAGE }),
        "continuationToken" => json!({ "type": "string", "pattern": TOKEN_PATTERN }),
        "notSeenFor" => json!({ "type": "string", "pattern": SPAN_PATTERN }),
        "applicationType" => numbered(&APPLICATION_TYPES),
        "securityMode" => numbered(&SECURITY_MODES),
        "endpointState" => one_of(&ENDPOINT_STATES),
        _ => return None,
    })
}

/// The request body models of the routes whose handlers read a model (the twin routes pass
/// any JSON to the module, so their `serde_json::Value` is already the truth).
fn body_schema(method: &str, path: &str) -> Option<Value> {
    let context = nullable(json!({ "type": "object" }));
    Some(match (method, path) {
        ("post", "/registry/v2/applications") => object(
            json!({
                "discoveryUrl": { "type": "string", "pattern": "^opc\\.tcp://" },
                "id": text(),
                "context": context,
            }),
            &["discoveryUrl"],
            false,
        ),
        ("post", "/registry/v2/applications/discover") => object(
            json!({
                "id": text(),
                "discovery": nullable(numbered(&DISCOVERY_MODES)),
                "configuration": nullable(json!({ "type": "object" })),
                "context": context,
            }),
            &[],
            false,
        ),
        ("post", "/registry/v2/applications/query") => object(
            json!({
                "applicationType": nullable(numbered(&APPLICATION_TYPES)),
                "applicationUri": text(), "productUri": text(), "applicationName": text(),
                "locale": text(), "capability": text(), "discoveryProfileUri": text(),
                "gatewayServerUri": text(), "siteOrGatewayId": text(),
                "includeNotSeenSince": nullable(json!({ "type": "boolean" })),
                "discovererId": text(),
            }),
            &[],
            false,
        ),
        ("post", "/registry/v2/endpoints/query") => object(
            json!({
                "url": text(), "certificate": text(),
                "securityMode": nullable(numbered(&SECURITY_MODES)),
                "securityPolicy": text(),
                "endpointState": nullable(one_of(&ENDPOINT_STATES)),
                "includeNotSeenSince": nullable(json!({ "type": "boolean" })),
                "discovererId": text(), "applicationId": text(), "siteOrGatewayId": text(),
            }),
            &[],
            false,
        ),
        ("post", "/registry/v2/publishers/query") => object(
            json!({ "siteId": text(), "connected": nullable(json!({ "type": "boolean" })) }),
            &[],
            false,
        ),
        ("patch", "/registry/v2/applications/{applicationId}") => object(
            json!({
                "productUri": text(), "applicationName": text(), "locale": text(),
                "localizedNames": nullable(json!({
                    "type": "object", "additionalProperties": text()
                })),
                "certificate": nullable(json!({ "type": "string", "pattern": BASE64_PATTERN })),
                "capabilities": nullable(json!({ "type": "array", "items": { "type": "string" } })),
                "discoveryUrls": nullable(json!({
                    "type": "array",
                    "items": { "type": "string", "pattern": "^(opc\\.tcp://|http)" }
                })),
                "discoveryProfileUri": text(), "gatewayServerUri": text(),
                "context": { "type": ["object", "array", "string", "number", "boolean", "null"] },
            }),
            &[],
            true,
        ),
        ("patch", "/registry/v2/publishers/{publisherId}") => object(
            json!({
                // Empty clears the site; anything else is an id (`registry::update_publisher`).
                "siteId": nullable(json!({
                    "type": "string", "maxLength": MAX_ID_LEN,
                    "pattern": ID_PATTERN.replace("]+$", "]*$")
                })),
                "apiKey": text(),
                "status": nullable(json!({
                    "type": "string", "enum": ["enabled", "disabled", "Enabled", "Disabled"]
                })),
                "statusReason": text(),
            }),
            &[],
            true,
        ),
        _ => return None,
    })
}

/// A JSON schema written above as the document's type; `None` (logged) if it is not one,
/// which the tests rule out.
fn typed<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Option<T> {
    serde_json::from_value(v)
        .map_err(|e| tracing::error!(what, error = %e, "OpenAPI input rule not applied"))
        .ok()
}

/// An id in a path: as `ID_PATTERN` without `%`. An id with `%` is served when the client
/// percent-encodes it (`%25`), as RFC 3986 asks; clients that send a value's `%` as is (so
/// `a%0Ab` arrives as a line break) are common enough that the document leaves it out.
const PATH_ID_PATTERN: &str = r"^[A-Za-z0-9\-:.+_#*?!(),=@;$']+$";

fn path_id_schema() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": MAX_ID_LEN, "pattern": PATH_ID_PATTERN })
}

/// `discovererId` names the module that runs a registration or discovery (an id); in the
/// queries it is only a filter.
fn parameter_schema(method: &str, path: &str, p: &Parameter) -> Option<Value> {
    let name = p.name.as_str();
    let runs_on_module = method == "post"
        && matches!(
            path,
            "/registry/v2/applications" | "/registry/v2/applications/discover"
        );
    match p.parameter_in {
        ParameterIn::Path if name.ends_with("Id") => Some(path_id_schema()),
        // Empty means "the only module online".
        ParameterIn::Query if name == "discovererId" && runs_on_module => Some(json!({
            "type": "string", "maxLength": MAX_ID_LEN,
            "pattern": ID_PATTERN.replace("]+$", "]*$")
        })),
        ParameterIn::Header if name.eq_ignore_ascii_case(TIMEOUT_HEADER) => Some(json!({
            "type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS
        })),
        ParameterIn::Header if name.eq_ignore_ascii_case("If-Match") => {
            Some(json!({ "type": "string", "pattern": IF_MATCH_PATTERN }))
        }
        ParameterIn::Query => query_schema(name),
        _ => None,
    }
}

fn tighten_operation(method: &str, path: &str, op: &mut Operation) {
    for p in op.parameters.iter_mut().flatten() {
        let RefOr::T(p) = p else { continue };
        if let Some(schema) = parameter_schema(method, path, p) {
            if let Some(schema) = typed::<RefOr<Schema>>(&p.name, schema) {
                p.schema = Some(schema);
            }
        }
    }
    let body = match (method, path) {
        // One exported record a line; an empty body imports nothing.
        ("post", "/registry/v2/import") => Some(json!({
            "required": false,
            "content": { "application/x-ndjson": { "schema": { "type": "string" } } }
        })),
        _ => body_schema(method, path).map(|schema| {
            json!({
                "required": true,
                "content": { "application/json": { "schema": schema } }
            })
        }),
    };
    if let Some(body) = body.and_then(|b| typed::<RequestBody>(path, b)) {
        op.request_body = Some(RefOr::T(body));
    }
    if (method, path) == ("get", "/registry/v2/export") {
        if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
            let lines = typed::<Content>(path, json!({ "schema": { "type": "string" } }));
            ok.content.clear();
            ok.content.insert(
                "application/x-ndjson".into(),
                RefOr::T(lines.unwrap_or_default()),
            );
        }
    }
}

/// The `Modify` that applies the rules above to every operation.
pub struct InputRules;

impl utoipa::Modify for InputRules {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ] {
                if let Some(op) = op {
                    tighten_operation(method, path, op);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::validate_id;

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern).is_ok_and(|r| r.is_match(s))
    }

    #[test]
    fn id_pattern_is_validate_id() {
        for s in ["Abc-1:2.3+4%5_6#7*8?9!(),=@;$'", "uas0123"] {
            assert!(matches(ID_PATTERN, s) && validate_id(s).is_ok(), "{s}");
        }
        for s in ["a b", "a/b", "ä", "a\"b", "a{b", ""] {
            assert!(!matches(ID_PATTERN, s) && validate_id(s).is_err(), "{s}");
        }
    }

    #[test]
    fn path_ids_are_ids_without_percent() {
        assert!(matches(PATH_ID_PATTERN, "Abc-1:2.3+4_6#7*8?9!(),=@;$'"));
        assert!(!matches(PATH_ID_PATTERN, "a%0Ab"));
        for s in ["a b", "a/b", "ä", "a\"b", "a{b", ""] {
            assert!(!matches(PATH_ID_PATTERN, s), "{s}");
        }
    }

    #[test]
    fn issued_tokens_match_the_token_pattern() {
        for id in ["a", "ab", "abc", "uas0123456789", "x:y"] {
            assert!(
                matches(TOKEN_PATTERN, &crate::store::encode_token(id)),
                "{id}"
            );
        }
        assert!(!matches(TOKEN_PATTERN, "abcde"), "5 chars is no base64");
        assert!(!matches(TOKEN_PATTERN, "ab=="), "padding is not issued");
    }

    #[test]
    fn every_body_schema_is_a_schema() {
        for (method, path) in [
            ("post", "/registry/v2/applications"),
            ("post", "/registry/v2/applications/discover"),
            ("post", "/registry/v2/applications/query"),
            ("post", "/registry/v2/endpoints/query"),
            ("post", "/registry/v2/publishers/query"),
            ("patch", "/registry/v2/applications/{applicationId}"),
            ("patch", "/registry/v2/publishers/{publisherId}"),
        ] {
            let schema = body_schema(method, path).unwrap_or_default();
            let typed = serde_json::from_value::<RefOr<Schema>>(schema);
            assert!(typed.is_ok(), "{method} {path}: {:?}", typed.err());
        }
    }

    #[test]
    fn span_pattern_values_parse() {
        for s in ["0", "1500", "01:02:03", "2.03:04:05.5"] {
            assert!(matches(SPAN_PATTERN, s), "{s}");
            assert!(crate::registry::parse_span(s).is_some(), "{s}");
        }
        assert!(!matches(SPAN_PATTERN, ""));
    }
}

#[cfg(test)]
mod document_tests {
    use utoipa::OpenApi;

    /// Every rule reaches the served document (a schema written wrong would be dropped).
    #[test]
    fn the_document_carries_the_rules() {
        let doc = serde_json::to_value(super::super::openapi::ApiDoc::openapi()).unwrap();
        let op = |path: &str, method: &str| doc["paths"][path][method].clone();
        let param = |path: &str, method: &str, name: &str| {
            op(path, method)["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
                .unwrap_or_default()
        };
        let id = param("/registry/v2/endpoints/{endpointId}", "get", "endpointId");
        assert_eq!(id["schema"]["maxLength"], 128);
        let size = param("/registry/v2/endpoints", "get", "pageSize");
        assert_eq!(size["schema"]["maximum"], 1000);
        let timeout = param("/twin/v2/read/{endpointId}", "post", "x-iiot-timeout-ms");
        assert_eq!(timeout["schema"]["minimum"], 1);
        let tag = param(
            "/registry/v2/applications/{applicationId}",
            "patch",
            "If-Match",
        );
        assert!(tag["schema"]["pattern"].is_string());
        let token = param("/registry/v2/applications", "get", "continuationToken");
        assert!(token["schema"]["pattern"].is_string());
        let patch = op("/registry/v2/applications/{applicationId}", "patch");
        let body = &patch["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["additionalProperties"], false);
        assert!(body["properties"]["localizedNames"].is_object());
        let register = op("/registry/v2/applications", "post");
        let body = &register["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["required"][0], "discoveryUrl");
        let export = op("/registry/v2/export", "get");
        assert!(export["responses"]["200"]["content"]["application/x-ndjson"].is_object());
        let import = op("/registry/v2/import", "post");
        assert!(import["requestBody"]["content"]["application/x-ndjson"].is_object());
    }
}
