//! Many identities at once, in IoT Hub's `ExportImportDevice` shape: `POST /devices` (the
//! service SDKs' bulk registry operation, ≤ 100 items), and export / import of the whole
//! registry as JSON lines (`GET /devices/export`, `POST /devices/import`) — the format of IoT
//! Hub's export jobs, so a registry exported from a cloud hub imports here unchanged.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::error::HubError;
use super::http::{HubState, IfMatch};
use super::identity::Identity;
use super::store::Right;
use super::Hub;

/// Most items of one `POST /devices`, as IoT Hub allows.
const MAX_BULK: usize = 100;
/// Most lines of one import.
const MAX_IMPORT_LINES: usize = 100_000;
/// Identities read per query while exporting.
const EXPORT_PAGE: usize = 1000;

/// One line's or item's failure, as IoT Hub reports it.
fn failure(item: &Value, operation: &str, e: &HubError) -> Value {
    json!({
        "deviceId": item.get("id").cloned().unwrap_or(Value::Null),
        "moduleId": item.get("moduleId").cloned().unwrap_or(Value::Null),
        "errorCode": e.code(),
        "errorStatus": e.to_string(),
        "operation": operation,
    })
}

fn text(item: &Value, key: &str) -> Option<String> {
    item.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Applies one `ExportImportDevice`; its `importMode` decides (IoT Hub's modes, and
/// `createOrUpdate`, the default of import jobs).
pub(super) async fn apply(hub: &Hub, item: &Value, default_mode: &str) -> Result<(), HubError> {
    let Some(obj) = item.as_object() else {
        return Err(HubError::Argument("an item is a JSON object".into()));
    };
    let device_id = text(item, "id").ok_or_else(|| HubError::Argument("id is missing".into()))?;
    let module_id = text(item, "moduleId").unwrap_or_default();
    crate::ids::validate_id(&device_id)?;
    if !module_id.is_empty() {
        crate::ids::validate_id(&module_id)?;
    }
    let mode = text(item, "importMode").unwrap_or_else(|| default_mode.to_string());
    let etag = text(item, "eTag");
    let twin_etag = text(item, "twinETag");
    let with_etag = |e: Option<String>| match e {
        Some(e) => Ok(IfMatch::Etag(e)),
        None => Err(HubError::Argument(format!(
            "importMode {mode} needs an eTag"
        ))),
    };
    let identity_condition = match mode.to_ascii_lowercase().as_str() {
        "create" => Some(IfMatch::Absent),
        "update" | "createorupdate" => Some(IfMatch::Any),
        "updateifmatchetag" => Some(with_etag(etag.clone())?),
        "delete" => {
            return hub
                .delete_identity(&device_id, &module_id, IfMatch::Any)
                .await
        }
        "deleteifmatchetag" => {
            return hub
                .delete_identity(&device_id, &module_id, with_etag(etag)?)
                .await
        }
        "updatetwin" => None,
        "updatetwinifmatchetag" => {
            with_etag(twin_etag.clone())?;
            None
        }
        other => {
            return Err(HubError::Argument(format!(
                "importMode '{other}': use create, update, createOrUpdate, updateIfMatchETag, \
                 delete, deleteIfMatchETag, updateTwin or updateTwinIfMatchETag"
            )))
        }
    };
    if let Some(condition) = identity_condition {
        let mut body = Map::new();
        body.insert("deviceId".into(), device_id.clone().into());
        if !module_id.is_empty() {
            body.insert("moduleId".into(), module_id.clone().into());
        }
        for key in [
            "status",
            "statusReason",
            "authentication",
            "capabilities",
            "deviceScope",
            "parentScopes",
            "managedBy",
        ] {
            if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
                body.insert(key.into(), v.clone());
            }
        }
        let body = Bytes::from(Value::Object(body).to_string());
        hub.put_identity(&device_id, &module_id, &body, condition)
            .await?;
    }
    // Tags and desired properties (reported ones are the device's to set).
    let tags = obj.get("tags").filter(|v| !v.is_null()).cloned();
    let desired = obj
        .get("properties")
        .and_then(|p| p.get("desired"))
        .filter(|v| !v.is_null())
        .cloned();
    if tags.is_some() || desired.is_some() {
        let mut patch = Map::new();
        if let Some(t) = tags {
            patch.insert("tags".into(), t);
        }
        if let Some(d) = desired {
            patch.insert("properties".into(), json!({ "desired": d }));
        }
        let condition =
            match twin_etag.filter(|_| mode.eq_ignore_ascii_case("updateTwinIfMatchETag")) {
                Some(e) => IfMatch::Etag(e),
                None => IfMatch::Any,
            };
        let body = Bytes::from(Value::Object(patch).to_string());
        hub.write_twin(&device_id, &module_id, &body, condition, false)
            .await?;
    }
    Ok(())
}

/// `POST /devices`: up to 100 items; 200 when all succeeded, 400 with the failures otherwise
/// (both with IoT Hub's `BulkRegistryOperationResult`).
pub(super) async fn bulk(
    State(s): State<HubState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, HubError> {
    s.authorize(&headers, &uri, Right::RegistryWrite)?;
    let items = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a,
        Ok(_) => {
            return Err(HubError::Argument(
                "the body is a JSON array of devices".into(),
            ))
        }
        Err(e) => {
            return Err(HubError::Argument(format!(
                "the body is not valid JSON: {e}"
            )))
        }
    };
    if items.len() > MAX_BULK {
        return Err(HubError::Argument(format!(
            "{} devices given; at most {MAX_BULK} per request (use /devices/import for more)",
            items.len()
        )));
    }
    let mut errors = Vec::new();
    for item in &items {
        let mode = text(item, "importMode").unwrap_or_else(|| "create".into());
        if let Err(e) = apply(&s.hub, item, "create").await {
            errors.push(failure(item, &mode, &e));
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let result = json!({ "isSuccessful": errors.is_empty(), "errors": errors, "warnings": [] });
    Ok((status, Json(result)).into_response())
}

/// `POST /devices/import`: one `ExportImportDevice` per line (default `createOrUpdate`);
/// every line is applied on its own, the answer counts them and lists the failures.
pub(super) async fn import(
    State(s): State<HubState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, HubError> {
    s.authorize(&headers, &uri, Right::RegistryWrite)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| HubError::Argument("the body is UTF-8 JSON lines".into()))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    if lines.len() > MAX_IMPORT_LINES {
        return Err(HubError::Argument(format!(
            "{} lines; at most {MAX_IMPORT_LINES} per import",
            lines.len()
        )));
    }
    let (mut imported, mut errors) = (0usize, Vec::new());
    for (n, line) in lines {
        let outcome = match serde_json::from_str::<Value>(line) {
            Ok(item) => apply(&s.hub, &item, "createOrUpdate").await.map_err(|e| {
                let mut f = failure(&item, &text_mode(&item), &e);
                f["line"] = (n + 1).into();
                f
            }),
            Err(e) => Err(json!({ "line": n + 1, "errorCode": "ArgumentInvalid",
                "errorStatus": format!("not JSON: {e}") })),
        };
        match outcome {
            Ok(()) => imported += 1,
            Err(f) => errors.push(f),
        }
    }
    tracing::info!(imported, failed = errors.len(), "hub: identities imported");
    Ok(Json(
        json!({ "imported": imported, "failed": errors.len(), "errors": errors }),
    ))
}

fn text_mode(item: &Value) -> String {
    text(item, "importMode").unwrap_or_else(|| "createOrUpdate".into())
}

/// One identity as an export line: IoT Hub's `ExportImportDevice`.
fn export_line(i: &Identity, keys: bool) -> Value {
    let mut v = i.to_json(keys);
    let mut line = json!({
        "id": i.device_id,
        "eTag": i.etag(),
        "status": if i.desc.enabled { "enabled" } else { "disabled" },
        "authentication": v["authentication"].take(),
        "twinETag": i.twin.etag(),
        "properties": {
            "desired": Value::Object(i.twin.desired.props.clone()),
            "reported": Value::Object(i.twin.reported.props.clone()),
        },
    });
    if !i.twin.tags.is_empty() {
        line["tags"] = Value::Object(i.twin.tags.clone());
    }
    if i.is_module() {
        line["moduleId"] = i.module_id.clone().into();
        if let Some(m) = &i.desc.managed_by {
            line["managedBy"] = m.clone().into();
        }
    } else {
        line["statusReason"] = i.desc.status_reason.clone().into();
        line["capabilities"] = json!({ "iotEdge": i.desc.iot_edge });
        if let Some(s) = &i.desc.device_scope {
            line["deviceScope"] = s.clone().into();
        }
        line["parentScopes"] = i.desc.parent_scopes.clone().into();
    }
    line
}

/// `GET /devices/export[?excludeKeys=true]`: every device, then every module, one line each,
/// streamed a page at a time. Keys only for callers who may write the registry.
pub(super) async fn export(
    State(s): State<HubState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HubError> {
    let caller = s.authorize(&headers, &uri, Right::RegistryRead)?;
    let keys = caller.may(Right::RegistryWrite)
        && !q
            .get("excludeKeys")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let hub = s.hub.clone();
    let pages =
        futures::stream::unfold(Some((false, String::new(), String::new())), move |state| {
            let hub = hub.clone();
            async move {
                let (modules, d, m) = state?;
                match hub.store.after(modules, None, (&d, &m), EXPORT_PAGE).await {
                    Ok(page) => {
                        let next = match page.last() {
                            Some(last) if page.len() == EXPORT_PAGE => {
                                Some((modules, last.device_id.clone(), last.module_id.clone()))
                            }
                            _ if !modules => Some((true, String::new(), String::new())),
                            _ => None,
                        };
                        let mut out = String::new();
                        for i in &page {
                            out.push_str(&export_line(i, keys).to_string());
                            out.push('\n');
                        }
                        Some((Ok::<_, std::io::Error>(out), next))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "hub: export stopped");
                        Some((
                            Err(std::io::Error::other("export failed; see the log")),
                            None,
                        ))
                    }
                }
            }
        });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(pages),
    )
        .into_response())
}
