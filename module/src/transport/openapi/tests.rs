use serde_json::{json, Value};

use super::*;
use crate::api::browse::{BrowseDirection, NodeReferenceModel};
use crate::api::connection::{
    ConnectionOptions, CredentialModel, CredentialType, NamespaceFormat, SecurityMode,
    UserIdentityModel,
};
use crate::api::node::{NodeAccessLevel, NodeClass, NodeEventNotifier, NodeModel};
use crate::api::pki::X509ChainStatus;
use crate::api::published_nodes::OpcNodeModel;
use crate::api::read::TimestampsToReturn;
use crate::api::status::ServiceResultModel;
use crate::api::{Operation, OPERATIONS};
use crate::transport::http::served;

fn served_document() -> Value {
    serde_json::to_value(document(served())).unwrap()
}

/// The schema a `$ref` points at (the schema itself when it is none).
fn deref<'a>(doc: &'a Value, schema: &'a Value) -> Result<&'a Value, String> {
    match schema["$ref"].as_str() {
        None => Ok(schema),
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .ok_or_else(|| format!("foreign $ref {r}"))?;
            doc["components"]["schemas"]
                .get(name)
                .ok_or_else(|| format!("$ref {r} names no component"))
        }
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

/// Checks `value` against `schema` (JSON Schema as utoipa writes it: `$ref`, `oneOf`,
/// `allOf`, `type`, `enum`, `properties`, `required`, `additionalProperties`, `items`), and
/// one rule stricter than JSON Schema: a member the schema does not name is an error unless
/// the schema declares `additionalProperties`, because a member the model writes that the
/// document leaves out is exactly what this document must not do.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = match deref(doc, schema) {
        Ok(s) => s,
        Err(e) => return errors.push(format!("{at}: {e}")),
    };
    if let Some(branches) = schema["oneOf"].as_array() {
        let fitting = branches
            .iter()
            .filter(|b| {
                let mut e = Vec::new();
                check(doc, b, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if fitting != 1 {
            errors.push(format!("{at}: {value} fits {fitting} oneOf branches"));
        }
    }
    for branch in schema["allOf"].as_array().into_iter().flatten() {
        check(doc, branch, value, at, errors);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        return errors.push(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(value) {
            errors.push(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    if let Value::Object(members) = value {
        let properties = schema["properties"].as_object();
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !members.contains_key(name) {
                errors.push(format!("{at}: required member {name} missing"));
            }
        }
        let structural = properties.is_some() || schema["type"] == "object";
        for (name, member) in members {
            match properties.and_then(|p| p.get(name)) {
                Some(s) => check(doc, s, member, &format!("{at}.{name}"), errors),
                None => match &schema["additionalProperties"] {
                    extra @ Value::Object(_) => {
                        check(doc, extra, member, &format!("{at}.{name}"), errors)
                    }
                    Value::Bool(true) => {}
                    _ if structural => {
                        errors.push(format!("{at}: member {name} is not in the schema"))
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(doc, item, v, &format!("{at}[{i}]"), errors);
        }
    }
}

fn errors_of(doc: &Value, component: &str, value: &Value) -> Vec<String> {
    let schema = json!({ "$ref": format!("#/components/schemas/{component}") });
    let mut errors = Vec::new();
    check(doc, &schema, value, component, &mut errors);
    errors
}

/// The component a body's schema refers to, asserting it spells out members.
fn referenced_model<'a>(doc: &'a Value, schema: &'a Value, what: &str) -> &'a str {
    let name = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("{what}: not a $ref to a component: {schema}"));
    let model = &doc["components"]["schemas"][name];
    let has_members = model["properties"]
        .as_object()
        .is_some_and(|p| !p.is_empty());
    // PublishedNodesResponseModel is `{}` in 2.9: an open object, members kept as they come.
    let open = name == "PublishedNodesResponseModel" && model["additionalProperties"].is_object();
    assert!(
        has_members || model["enum"].is_array() || open,
        "{what}: component {name} has no members: {model}"
    );
    name
}

/// The component the table's model name must be documented by.
fn component_for(spec: &str) -> String {
    if let Some(inner) = spec
        .strip_prefix("RequestEnvelope<")
        .and_then(|s| s.strip_suffix('>'))
    {
        return format!("RequestEnvelope_{}", inner.trim_end_matches('?'));
    }
    spec.trim_end_matches('?').into()
}

/// Checks one body against the table's spelling of it.
fn assert_body(doc: &Value, content: &Value, spec: &str, what: &str) {
    if spec == "bool" {
        assert_eq!(
            content["application/json"]["schema"]["type"], "boolean",
            "{what}"
        );
    } else if let Some(item) = spec.strip_suffix("[]") {
        let schema = &content["application/json"]["schema"];
        assert_eq!(schema["type"], "array", "{what}: {schema}");
        let name = referenced_model(doc, &schema["items"], what);
        assert_eq!(name, component_for(item), "{what}");
    } else if let Some(item) = spec.strip_suffix(" stream") {
        let name = referenced_model(doc, &content[NDJSON]["schema"], what);
        assert_eq!(name, component_for(item), "{what}");
    } else {
        let name = referenced_model(doc, &content["application/json"]["schema"], what);
        assert_eq!(name, component_for(spec), "{what}");
    }
}

#[test]
fn document_lists_the_served_routes_with_problem_answers() {
    let doc = document(OPERATIONS.iter().filter(|o| o.op == Operation::ValueRead));
    let v = serde_json::to_value(&doc).unwrap();
    let read = &v["paths"]["/v2/read"]["post"];
    assert_eq!(read["operationId"], "ValueRead");
    assert!(read["requestBody"]["content"]["application/json"].is_object());
    assert!(read["responses"]["default"]["content"][PROBLEM_CONTENT_TYPE].is_object());
    assert!(v["paths"].get("/v2/write").is_none());
    assert!(v["paths"]["/healthz"]["get"].is_object());
    assert!(v["components"]["securitySchemes"][SECURITY].is_object());
    assert!(v["components"]["schemas"]["Problem"]["properties"]["symbolicId"].is_object());
}

#[test]
fn every_served_body_refers_to_its_model_with_members() {
    let doc = served_document();
    let mut seen = 0;
    for op in served() {
        let Some((verb, path)) = op.http else {
            continue;
        };
        let form = http_form(op);
        let operation = &doc["paths"][path][method_name(verb)];
        let what = op.name();
        assert!(operation.is_object(), "{what}: no {path}");
        let answer = &operation["responses"][form.status];
        match form.response {
            "-" => assert!(answer["content"].is_null(), "{what}: {answer}"),
            spec => assert_body(&doc, &answer["content"], spec, what),
        }
        let request = &operation["requestBody"];
        let has_body = !matches!(verb, HttpVerb::Get | HttpVerb::Delete)
            && form.request != "-"
            && !path.contains(&format!("{{{}}}", form.request));
        match (has_body, form.request) {
            (false, _) => assert!(request.is_null(), "{what}: {request}"),
            (true, "certificate") => {
                for media in ["application/octet-stream", "application/json"] {
                    assert!(request["content"][media].is_object(), "{what}: {request}");
                }
            }
            (true, spec) => {
                assert_eq!(request["required"], !spec.ends_with('?'), "{what}");
                assert_body(&doc, &request["content"], spec, what);
            }
        }
        seen += 1;
    }
    assert!(seen > 30, "only {seen} operations served");
    // A model the table names for a route that is not served is not listed.
    assert!(doc["components"]["schemas"]
        .get("CertificateRevocationListArgs")
        .is_none());
}

fn method_name(verb: HttpVerb) -> &'static str {
    match verb {
        HttpVerb::Get => "get",
        HttpVerb::Post => "post",
        HttpVerb::Put => "put",
        HttpVerb::Patch => "patch",
        HttpVerb::Delete => "delete",
    }
}

#[test]
fn members_are_spelled_as_on_the_wire() {
    let doc = served_document();
    let schemas = &doc["components"]["schemas"];
    let props = |model: &str| schemas[model]["properties"].clone();

    let envelope = props("RequestEnvelope_BrowseFirstRequestModel");
    assert_eq!(
        envelope["connection"]["$ref"],
        "#/components/schemas/ConnectionModel"
    );
    assert_eq!(
        schemas["RequestEnvelope_BrowseFirstRequestModel"]["required"],
        json!(["connection"])
    );
    let browse = props("BrowseFirstRequestModel");
    for member in [
        "nodeId",
        "direction",
        "maxReferencesToReturn",
        "nodeClassFilter",
    ] {
        assert!(
            browse[member].is_object(),
            "BrowseFirstRequestModel.{member}"
        );
    }
    assert!(browse.get("node_id").is_none());
    let directions = &schemas["BrowseDirection"];
    assert_eq!(directions["type"], "string");
    assert_eq!(directions["enum"], json!(["Forward", "Backward", "Both"]));

    let read = props("ValueReadResponseModel");
    for member in ["value", "dataType", "sourceTimestamp", "errorInfo"] {
        assert!(read[member].is_object(), "ValueReadResponseModel.{member}");
    }
    // Renames: `type`, the PascalCase exceptions and `serverProfileArray`.
    assert!(props("CredentialModel")["type"].is_object());
    let caps = props("ServerCapabilitiesModel");
    for member in ["MaxSessions", "serverProfileArray", "operationLimits"] {
        assert!(caps[member].is_object(), "ServerCapabilitiesModel.{member}");
    }
    assert!(props("PublishedNodesEntryModel")["EndpointUrl"].is_object());
    assert!(props("OpcNodeModel")["OpcSamplingIntervalTimespan"].is_object());
    // Members a configuration keeps without modelling them.
    assert!(schemas["PublishedNodesEntryModel"]["additionalProperties"].is_object());
    assert_eq!(schemas["EndpointModel"]["required"], json!(["url"]));
    // The hand-written wire forms: base64 bytes and flag sets.
    assert_eq!(schemas["ByteString"]["format"], "byte");
    let flags = &schemas["X509ChainStatus"]["oneOf"];
    assert_eq!(flags[0]["type"], "string");
    assert_eq!(flags[1]["type"], "integer");
    assert!(flags[0]["description"]
        .as_str()
        .unwrap()
        .contains("UntrustedRoot"));
    // The routes the module serves its own way.
    let config = &doc["paths"]["/v2/configuration"]["get"];
    assert_eq!(config["parameters"][0]["name"], "IncludeNodes");
    assert_eq!(config["parameters"][0]["in"], "query");
    assert!(
        doc["paths"]["/v2/pki/{store}/certs/{thumbprint}"]["delete"]["responses"]["204"]
            .is_object()
    );
}

fn example_connection() -> ConnectionModel {
    ConnectionModel {
        endpoint: EndpointModel {
            url: "opc.tcp://plc:4840".into(),
            security_mode: Some(SecurityMode::SignAndEncrypt),
            security_policy: Some(
                "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256".into(),
            ),
            ..Default::default()
        },
        user: Some(CredentialModel {
            type_: Some(CredentialType::UserName),
            value: Some(UserIdentityModel {
                user: Some("operator".into()),
                password: Some("secret".into()),
                thumbprint: None,
            }),
        }),
        group: Some("line1".into()),
        options: Some(ConnectionOptions::NO_COMPLEX_TYPE_SYSTEM),
        ..Default::default()
    }
}

#[test]
fn bodies_serialized_from_the_models_fit_their_schemas() {
    let doc = served_document();
    let read = RequestEnvelope::new(
        example_connection(),
        ValueReadRequestModel {
            node_id: Some("nsu=http://opcfoundation.org/UA/;i=2258".into()),
            browse_path: Some(vec!["/Server".into()]),
            header: Some(RequestHeaderModel {
                namespace_format: Some(NamespaceFormat::Expanded),
                operation_timeout: Some(5000),
                ..Default::default()
            }),
            max_age: Some("00:00:01".into()),
            timestamps_to_return: Some(TimestampsToReturn::Both),
            ..Default::default()
        },
    );
    let answer = ValueReadResponseModel {
        value: Some(json!(42.5)),
        data_type: Some("Double".into()),
        source_timestamp: Some("2026-01-01T00:00:00Z".into()),
        error_info: Some(ServiceResultModel {
            status_code: 0x8034_0000,
            symbolic_id: Some("BadNodeIdUnknown".into()),
            inner: Some(Box::new(ServiceResultModel {
                status_code: 0x8000_0000,
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = NodeModel {
        node_class: Some(NodeClass::Variable),
        access_level: Some(NodeAccessLevel::CURRENT_READ | NodeAccessLevel::CURRENT_WRITE),
        // No named bit: written as the number 0.
        event_notifier: Some(NodeEventNotifier(0)),
        value: Some(json!({"x": [1, 2]})),
        ..NodeModel::with_id("i=2258")
    };
    let browse = BrowseFirstResponseModel {
        node: node.clone(),
        references: vec![NodeReferenceModel {
            reference_type_id: Some("i=35".into()),
            direction: Some(BrowseDirection::Forward),
            target: node,
            error_info: None,
        }],
        continuation_token: Some("abc".into()),
        error_info: None,
    };
    let mut entry = PublishedNodesEntryModel {
        endpoint_url: "opc.tcp://plc:4840".into(),
        use_security: Some(true),
        data_set_writer_id: Some("w1".into()),
        data_set_publishing_interval: Some(1000.0),
        opc_nodes: Some(vec![OpcNodeModel {
            id: Some("i=2258".into()),
            opc_sampling_interval: Some(500.0),
            ..Default::default()
        }]),
        ..Default::default()
    };
    entry.extra.insert("WriterGroupPartitions".into(), json!(3));
    let chain = X509CertificateChainModel {
        chain: Some(vec![X509CertificateModel {
            thumbprint: Some("AB12".into()),
            pfx: Some(ByteString(vec![0x30, 0x82, 0x01])),
            self_signed: Some(true),
            ..Default::default()
        }]),
        status: Some(vec![X509ChainStatus::UNTRUSTED_ROOT, X509ChainStatus(0x2)]),
    };
    for (component, value) in [
        (
            "RequestEnvelope_ValueReadRequestModel",
            serde_json::to_value(&read).unwrap(),
        ),
        (
            "ValueReadResponseModel",
            serde_json::to_value(&answer).unwrap(),
        ),
        (
            "BrowseFirstResponseModel",
            serde_json::to_value(&browse).unwrap(),
        ),
        (
            "PublishedNodesEntryModel",
            serde_json::to_value(&entry).unwrap(),
        ),
        (
            "X509CertificateChainModel",
            serde_json::to_value(&chain).unwrap(),
        ),
    ] {
        assert_eq!(
            errors_of(&doc, component, &value),
            Vec::<String>::new(),
            "{value}"
        );
    }
}

#[test]
fn bodies_the_models_would_not_read_do_not_fit() {
    let doc = served_document();
    let envelope = "RequestEnvelope_BrowseFirstRequestModel";
    let good = json!({"connection": {"endpoint": {"url": "opc.tcp://a:1"}},
                      "request": {"nodeId": "i=85", "direction": "Both"}});
    assert!(errors_of(&doc, envelope, &good).is_empty());
    for bad in [
        json!({"connection": {"endpoint": {}}}),
        json!({"connection": {"endpoint": {"url": 1}}}),
        json!({"connection": {"endpoint": {"url": "opc.tcp://a:1"}}, "request": {"nodeID": "i=85"}}),
        json!({"connection": {"endpoint": {"url": "opc.tcp://a:1"}}, "request": {"direction": "Up"}}),
        json!({"request": {}}),
    ] {
        assert!(!errors_of(&doc, envelope, &bad).is_empty(), "{bad} fits");
    }
}
