//! `/registry/v2/applications` and `/registry/v2/endpoints`, plus the bulk export / import of
//! every identity as JSON lines (`/registry/v2/export`, `/registry/v2/import`).

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use iiot_api::{
    ApplicationRegistrationModel, DiscoveryRequestModel, Operation, ServerRegistrationRequestModel,
};
use iiot_auth::{Principal, Role};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    if_match, list_page, query_page, with_etag, AppState, JsonObject, Paging, QueryPairs,
    QueryParams,
};
use crate::error::ApiError;
use crate::ids::validate_id;
use crate::query::{from_query_pairs, ApplicationQuery, EndpointQuery, RegistryQuery};
use crate::registry::{now, ApplicationUpdate};
use crate::store::{Filter, Record, APPLICATION, ENDPOINT, PUBLISHER};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterQuery {
    discoverer_id: Option<String>,
}

/// `POST /registry/v2/applications`: the chosen module runs FindServer on the discovery URL
/// and the answer is registered at once, so the application and its endpoints are listed
/// when this returns.
#[utoipa::path(
    post,
    path = "/registry/v2/applications",
    tag = "Applications",
    summary = "Register a server by its discovery URL (the module runs FindServer)",
    request_body = serde_json::Value,
    params(("discovererId" = Option<String>, Query, description = "The module to use; default: the only one online")),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
        (status = 503, description = "No enabled module is online to run it", body = serde_json::Value),
        (status = 504, description = "The module did not answer in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn register_server(
    State(s): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<RegisterQuery>,
    headers: HeaderMap,
    JsonObject(req): JsonObject<ServerRegistrationRequestModel>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Admin)?;
    if !req.discovery_url.starts_with("opc.tcp://") {
        return Err(ApiError::BadRequest(
            "discoveryUrl must be an opc.tcp:// URL".into(),
        ));
    }
    let (module, root) = s.registry.discoverer(q.discoverer_id.as_deref()).await?;
    let body = serde_json::to_vec(&json!({ "discoveryUrl": req.discovery_url }))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let answer = s
        .rpc
        .call(
            &module,
            &root,
            Operation::FindServer,
            body,
            s.timeout(&headers)?,
        )
        .await?;
    let reg: ApplicationRegistrationModel = serde_json::from_slice(&answer)
        .map_err(|e| ApiError::Internal(format!("module answered FindServer with {e}")))?;
    let id = s
        .registry
        .register(&module, reg, &format!("register@{}", now()))
        .await?;
    Ok(Json(json!({ "id": id })))
}

/// `POST /registry/v2/applications/discover`: the chosen module starts a discovery run; its
/// discovery events upsert what it finds and mark `notSeenSince` on what it no longer finds.
#[utoipa::path(
    post,
    path = "/registry/v2/applications/discover",
    tag = "Applications",
    summary = "Start a discovery run on a module",
    request_body = serde_json::Value,
    params(("discovererId" = Option<String>, Query, description = "The module to use; default: the only one online")),
    responses(
        (status = 202, description = "The discovery run started", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
        (status = 503, description = "No enabled module is online to run it", body = serde_json::Value),
        (status = 504, description = "The module did not answer in time", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn discover(
    State(s): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<RegisterQuery>,
    headers: HeaderMap,
    JsonObject(req): JsonObject<DiscoveryRequestModel>,
) -> Result<StatusCode, ApiError> {
    p.require(Role::Admin)?;
    let (module, root) = s.registry.discoverer(q.discoverer_id.as_deref()).await?;
    let body = serde_json::to_vec(&req).map_err(|e| ApiError::Internal(e.to_string()))?;
    s.rpc
        .call(
            &module,
            &root,
            Operation::Discover,
            body,
            s.timeout(&headers)?,
        )
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PurgeQuery {
    not_seen_for: Option<String>,
}

#[utoipa::path(
    delete,
    path = "/registry/v2/applications",
    tag = "Applications",
    summary = "Purge applications not seen for a time",
    params(("notSeenFor" = Option<String>, Query, description = "Milliseconds or [d.]hh:mm:ss; default 0")),
    responses(
        (status = 200, description = "How many were purged", body = serde_json::Value),
        (status = "4XX", description = "problem+json", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn purge_applications(
    State(s): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<PurgeQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Admin)?;
    let age = match q.not_seen_for.as_deref() {
        None => std::time::Duration::ZERO,
        Some(v) => crate::registry::parse_span(v).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "notSeenFor '{v}': use milliseconds or [d.]hh:mm:ss"
            ))
        })?,
    };
    let purged = s.registry.purge_not_seen(age).await?;
    Ok(Json(json!({ "purged": purged })))
}

#[utoipa::path(
    get,
    path = "/registry/v2/applications",
    tag = "Applications",
    summary = "List applications",
    params(("continuationToken" = Option<String>, Query, description = "From the previous page"), ("pageSize" = Option<i32>, Query, description = "At most 1000")),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn list_applications(
    State(s): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<Paging>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Reader)?;
    list_page(&s, APPLICATION, &q, Record::to_json).await
}

#[utoipa::path(
    get,
    path = "/registry/v2/applications/{applicationId}",
    tag = "Applications",
    summary = "Get an application and its endpoints",
    params(("applicationId" = String, Path)),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn get_application(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    p.require(Role::Reader)?;
    validate_id(&id)?;
    let r = s
        .registry
        .store
        .get(APPLICATION, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no application '{id}'")))?;
    let endpoints = s
        .registry
        .store
        .all(
            ENDPOINT,
            Filter {
                owner: None,
                parent: Some(&id),
            },
        )
        .await?;
    // ApplicationRegistrationModel: the application and its endpoints' registrations.
    let body = json!({
        "application": r.to_json(),
        "endpoints": endpoints.iter().map(|e| e.body["registration"].clone()).collect::<Vec<_>>(),
    });
    Ok(with_etag(&r, body))
}

#[utoipa::path(
    delete,
    path = "/registry/v2/applications/{applicationId}",
    tag = "Applications",
    summary = "Delete an application and its endpoints",
    params(("applicationId" = String, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn delete_application(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    p.require(Role::Admin)?;
    s.registry
        .delete_application(&id, if_match(&headers)?.as_deref())
        .await?;
    Ok(StatusCode::OK)
}

#[utoipa::path(
    get,
    path = "/registry/v2/endpoints",
    tag = "Endpoints",
    summary = "List endpoints",
    params(("continuationToken" = Option<String>, Query, description = "From the previous page"), ("pageSize" = Option<i32>, Query, description = "At most 1000")),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn list_endpoints(
    State(s): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<Paging>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Reader)?;
    list_page(&s, ENDPOINT, &q, Record::to_json).await
}

#[utoipa::path(
    get,
    path = "/registry/v2/endpoints/{endpointId}",
    tag = "Endpoints",
    summary = "Get an endpoint",
    params(("endpointId" = String, Path)),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn get_endpoint(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    p.require(Role::Reader)?;
    validate_id(&id)?;
    let r = s
        .registry
        .store
        .get(ENDPOINT, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no endpoint '{id}'")))?;
    Ok(with_etag(&r, r.to_json()))
}

#[utoipa::path(
    get,
    path = "/registry/v2/endpoints/{endpointId}/certificate",
    tag = "Endpoints",
    summary = "The endpoint's certificate chain, fetched by its module",
    params(("endpointId" = String, Path)),
    responses(
        (status = 200, description = "X509CertificateChainModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn endpoint_certificate(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    p.require(Role::Reader)?;
    super::twin::forward_with(&s, &id, &headers, Operation::GetEndpointCertificate, |c| {
        c["endpoint"].clone()
    })
    .await
}

#[utoipa::path(
    post,
    path = "/registry/v2/endpoints/{endpointId}/test",
    tag = "Endpoints",
    summary = "Test that the module can connect to the endpoint",
    request_body = serde_json::Value,
    params(("endpointId" = String, Path)),
    responses(
        (status = 200, description = "TestConnectionResponseModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn test_endpoint(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    p.require(Role::Writer)?;
    let body = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    // The body (TestConnectionRequestModel) is optional.
    let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("request body is not valid: {e}")))?
    };
    super::twin::forward_with(
        &s,
        &id,
        &headers,
        Operation::TestConnection,
        |c| json!({ "connection": c, "request": request }),
    )
    .await
}

/// `POST /registry/v2/applications/query`: the body is the query; `pageSize` and
/// `continuationToken` come from the query string.
#[utoipa::path(
    post,
    path = "/registry/v2/applications/query",
    tag = "Applications",
    summary = "Query applications (ApplicationRegistrationQueryModel); paged",
    request_body = serde_json::Value,
    params(("pageSize" = Option<i32>, Query, description = "At most 1000"), ("continuationToken" = Option<String>, Query, description = "From the previous page")),
    responses(
        (status = 200, description = "ApplicationInfoListModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn query_applications(
    State(s): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<Paging>,
    JsonObject(query): JsonObject<ApplicationQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Reader)?;
    query_page(&s, RegistryQuery::Applications(query), &q, Record::to_json).await
}

/// `GET /registry/v2/applications/query`: the query's members as query-string parameters.
#[utoipa::path(
    get,
    path = "/registry/v2/applications/query",
    tag = "Applications",
    summary = "Query applications by query-string parameters; paged",
    params(
        ("applicationType" = Option<String>, Query, description = "Server (also ClientAndServer), Client (also ClientAndServer), ClientAndServer, DiscoveryServer"),
        ("applicationUri" = Option<String>, Query), ("productUri" = Option<String>, Query),
        ("applicationName" = Option<String>, Query), ("locale" = Option<String>, Query),
        ("capability" = Option<String>, Query), ("discoveryProfileUri" = Option<String>, Query),
        ("gatewayServerUri" = Option<String>, Query), ("siteOrGatewayId" = Option<String>, Query),
        ("includeNotSeenSince" = Option<bool>, Query), ("discovererId" = Option<String>, Query),
        ("pageSize" = Option<i32>, Query, description = "At most 1000"), ("continuationToken" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "ApplicationInfoListModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn query_applications_get(
    State(s): State<AppState>,
    p: Principal,
    mut pairs: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Reader)?;
    let paging = pairs.paging()?;
    let query: ApplicationQuery = from_query_pairs(pairs.0, &["includeNotSeenSince"])?;
    query_page(
        &s,
        RegistryQuery::Applications(query),
        &paging,
        Record::to_json,
    )
    .await
}

/// `PATCH /registry/v2/applications/{applicationId}`: a later discovery run may report
/// other values again, as in Azure; what discovery does not report (certificate) stays.
#[utoipa::path(
    patch,
    path = "/registry/v2/applications/{applicationId}",
    tag = "Applications",
    summary = "Update an application (ApplicationRegistrationUpdateModel; null = unchanged)",
    request_body = serde_json::Value,
    params(("applicationId" = String, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "The updated ApplicationInfoModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn patch_application(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonObject(update): JsonObject<ApplicationUpdate>,
) -> Result<Response, ApiError> {
    p.require(Role::Admin)?;
    let r = s
        .registry
        .update_application(&id, update, &p.name, if_match(&headers)?.as_deref())
        .await?;
    Ok(with_etag(&r, r.to_json()))
}

async fn set_enabled(
    s: &AppState,
    p: &Principal,
    id: &str,
    headers: &HeaderMap,
    enabled: bool,
) -> Result<Response, ApiError> {
    p.require(Role::Admin)?;
    let r = s
        .registry
        .set_application_enabled(id, enabled, &p.name, if_match(headers)?.as_deref())
        .await?;
    tracing::info!(application = %id, enabled, by = %p.name, "application state changed");
    Ok(with_etag(&r, r.to_json()))
}

/// `POST /registry/v2/applications/{applicationId}/disable`: twin requests to its endpoints
/// are refused (409 `BadOutOfService`) until it is enabled again.
#[utoipa::path(
    post,
    path = "/registry/v2/applications/{applicationId}/disable",
    tag = "Applications",
    summary = "Disable an application: it and its endpoints show notSeenSince; twin calls are refused",
    params(("applicationId" = String, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "The ApplicationInfoModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn disable_application(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_enabled(&s, &p, &id, &headers, false).await
}

#[utoipa::path(
    post,
    path = "/registry/v2/applications/{applicationId}/enable",
    tag = "Applications",
    summary = "Enable a disabled application and its endpoints again",
    params(("applicationId" = String, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "The ApplicationInfoModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn enable_application(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_enabled(&s, &p, &id, &headers, true).await
}

/// `POST /registry/v2/endpoints/query`.
#[utoipa::path(
    post,
    path = "/registry/v2/endpoints/query",
    tag = "Endpoints",
    summary = "Query endpoints (EndpointRegistrationQueryModel); paged",
    request_body = serde_json::Value,
    params(("pageSize" = Option<i32>, Query, description = "At most 1000"), ("continuationToken" = Option<String>, Query), ("onlyServerState" = Option<bool>, Query, description = "Accepted; only server state is kept")),
    responses(
        (status = 200, description = "EndpointInfoListModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn query_endpoints(
    State(s): State<AppState>,
    p: Principal,
    mut pairs: QueryPairs,
    JsonObject(query): JsonObject<EndpointQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Reader)?;
    let paging = pairs.paging()?;
    query_page(
        &s,
        RegistryQuery::Endpoints(query),
        &paging,
        Record::to_json,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/registry/v2/endpoints/query",
    tag = "Endpoints",
    summary = "Query endpoints by query-string parameters; paged",
    params(
        ("url" = Option<String>, Query, description = "Any case, trailing / ignored"),
        ("certificate" = Option<String>, Query, description = "Thumbprint"),
        ("securityMode" = Option<String>, Query, description = "Best (any), Sign, SignAndEncrypt, None, NotNone"),
        ("securityPolicy" = Option<String>, Query, description = "Policy URI or its name after #"),
        ("endpointState" = Option<String>, Query), ("includeNotSeenSince" = Option<bool>, Query),
        ("discovererId" = Option<String>, Query), ("applicationId" = Option<String>, Query),
        ("siteOrGatewayId" = Option<String>, Query), ("onlyServerState" = Option<bool>, Query),
        ("pageSize" = Option<i32>, Query, description = "At most 1000"), ("continuationToken" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "EndpointInfoListModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn query_endpoints_get(
    State(s): State<AppState>,
    p: Principal,
    mut pairs: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Reader)?;
    let paging = pairs.paging()?;
    let query: EndpointQuery = from_query_pairs(pairs.0, &["includeNotSeenSince"])?;
    query_page(
        &s,
        RegistryQuery::Endpoints(query),
        &paging,
        Record::to_json,
    )
    .await
}

/// One line of an export: a record exactly as stored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportLine {
    kind: String,
    id: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    parent: String,
    generation_id: String,
    etag: String,
    #[serde(default)]
    seen: String,
    body: Value,
}

#[utoipa::path(
    get,
    path = "/registry/v2/export",
    tag = "Registry",
    summary = "Export every identity as JSON lines",
    params(),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn export(State(s): State<AppState>, p: Principal) -> Result<Response, ApiError> {
    p.require(Role::Admin)?;
    let mut out = Vec::new();
    for kind in [PUBLISHER, APPLICATION, ENDPOINT] {
        for r in s.registry.store.all(kind, Filter::default()).await? {
            let line = ExportLine {
                kind: r.kind,
                id: r.id,
                owner: r.owner,
                parent: r.parent,
                generation_id: r.generation_id,
                etag: r.etag,
                seen: r.seen,
                body: r.body,
            };
            serde_json::to_writer(&mut out, &line)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            out.push(b'\n');
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from(out),
    )
        .into_response())
}

/// Imports JSON lines; every line is checked before anything is written.
#[utoipa::path(
    post,
    path = "/registry/v2/import",
    tag = "Registry",
    summary = "Import identities from JSON lines",
    request_body = String,
    params(),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn import(
    State(s): State<AppState>,
    p: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Admin)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(e.body_text())
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    let mut records = Vec::new();
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let l: ExportLine = serde_json::from_slice(line)
            .map_err(|e| ApiError::BadRequest(format!("line {}: {e}", n + 1)))?;
        if ![PUBLISHER, APPLICATION, ENDPOINT].contains(&l.kind.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "line {}: unknown kind '{}'",
                n + 1,
                l.kind
            )));
        }
        validate_id(&l.id)?;
        records.push(Record {
            kind: l.kind,
            id: l.id,
            owner: l.owner,
            parent: l.parent,
            generation_id: l.generation_id,
            etag: l.etag,
            seen: l.seen,
            body: l.body,
        });
    }
    for r in &records {
        s.registry.store.restore(r).await?;
    }
    Ok(Json(json!({ "imported": records.len() })))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/registry/v2/applications",
            get(list_applications)
                .post(register_server)
                .delete(purge_applications),
        )
        .route("/registry/v2/applications/discover", post(discover))
        .route(
            "/registry/v2/applications/query",
            get(query_applications_get).post(query_applications),
        )
        .route(
            "/registry/v2/applications/{applicationId}",
            get(get_application)
                .delete(delete_application)
                .patch(patch_application),
        )
        .route(
            "/registry/v2/applications/{applicationId}/enable",
            post(enable_application),
        )
        .route(
            "/registry/v2/applications/{applicationId}/disable",
            post(disable_application),
        )
        .route("/registry/v2/endpoints", get(list_endpoints))
        .route(
            "/registry/v2/endpoints/query",
            get(query_endpoints_get).post(query_endpoints),
        )
        .route("/registry/v2/endpoints/{endpointId}", get(get_endpoint))
        .route(
            "/registry/v2/endpoints/{endpointId}/certificate",
            get(endpoint_certificate),
        )
        .route(
            "/registry/v2/endpoints/{endpointId}/test",
            post(test_endpoint),
        )
        .route("/registry/v2/export", get(export))
        .route("/registry/v2/import", post(import))
}
