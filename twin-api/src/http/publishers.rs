//! `/registry/v2/publishers`: the modules, their identity status and live connection state.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use iiot_api::Operation;
use iiot_auth::{Principal, Role};
use serde_json::Value;

use super::{
    if_match, list_page, query_page, with_etag, AppState, JsonObject, Paging, QueryPairs,
    QueryParams,
};
use crate::error::ApiError;
use crate::ids::validate_id;
use crate::query::{from_query_pairs, PublisherQuery, RegistryQuery};
use crate::registry::PublisherUpdate;
use crate::store::PUBLISHER;

#[utoipa::path(
    get,
    path = "/registry/v2/publishers",
    tag = "Publishers",
    summary = "List the modules",
    params(("continuationToken" = Option<String>, Query, description = "From the previous page"), ("pageSize" = Option<i32>, Query, description = "At most 1000")),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn list(
    State(s): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<Paging>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Reader)?;
    list_page(&s, PUBLISHER, &q, |r| s.registry.publisher_json(r)).await
}

/// `POST /registry/v2/publishers/query`: `siteId` (exact) and `connected` (the live state).
#[utoipa::path(
    post,
    path = "/registry/v2/publishers/query",
    tag = "Publishers",
    summary = "Query modules (PublisherQueryModel); paged",
    request_body = serde_json::Value,
    params(("pageSize" = Option<i32>, Query, description = "At most 1000"), ("continuationToken" = Option<String>, Query), ("onlyServerState" = Option<bool>, Query, description = "Accepted; ignored")),
    responses(
        (status = 200, description = "PublisherListModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn query(
    State(s): State<AppState>,
    p: Principal,
    mut pairs: QueryPairs,
    JsonObject(q): JsonObject<PublisherQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Reader)?;
    let paging = pairs.paging()?;
    query_page(&s, RegistryQuery::Publishers(q), &paging, |r| {
        s.registry.publisher_json(r)
    })
    .await
}

#[utoipa::path(
    get,
    path = "/registry/v2/publishers/query",
    tag = "Publishers",
    summary = "Query modules by query-string parameters; paged",
    params(("siteId" = Option<String>, Query), ("connected" = Option<bool>, Query), ("onlyServerState" = Option<bool>, Query), ("pageSize" = Option<i32>, Query, description = "At most 1000"), ("continuationToken" = Option<String>, Query)),
    responses(
        (status = 200, description = "PublisherListModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn query_get(
    State(s): State<AppState>,
    p: Principal,
    mut pairs: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Reader)?;
    let paging = pairs.paging()?;
    let q: PublisherQuery = from_query_pairs(pairs.0, &["connected"])?;
    query_page(&s, RegistryQuery::Publishers(q), &paging, |r| {
        s.registry.publisher_json(r)
    })
    .await
}

#[utoipa::path(
    get,
    path = "/registry/v2/publishers/{publisherId}",
    tag = "Publishers",
    summary = "Get a module",
    params(("publisherId" = String, Path)),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn get_one(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    p.require(Role::Reader)?;
    validate_id(&id)?;
    let r = s
        .registry
        .store
        .get(PUBLISHER, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no publisher '{id}'")))?;
    Ok(with_etag(&r, s.registry.publisher_json(&r)))
}

#[utoipa::path(
    patch,
    path = "/registry/v2/publishers/{publisherId}",
    tag = "Publishers",
    summary = "Update a module: siteId, status enabled/disabled, statusReason",
    request_body = serde_json::Value,
    params(("publisherId" = String, Path), ("If-Match" = Option<String>, Header)),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn patch(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonObject(update): JsonObject<PublisherUpdate>,
) -> Result<Response, ApiError> {
    p.require(Role::Admin)?;
    let r = s
        .registry
        .update_publisher(&id, update, if_match(&headers)?.as_deref())
        .await?;
    Ok(with_etag(&r, s.registry.publisher_json(&r)))
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ConfiguredQuery {
    #[serde(rename = "IncludeNodes", alias = "includeNodes")]
    include_nodes: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/registry/v2/publishers/{publisherId}/endpoints",
    tag = "Publishers",
    summary = "The endpoints configured for publishing on the module",
    params(("publisherId" = String, Path), ("IncludeNodes" = Option<bool>, Query)),
    responses(
        (status = 200, description = "GetConfiguredEndpointsResponseModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(super) async fn configured_endpoints(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ConfiguredQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    p.require(Role::Reader)?;
    validate_id(&id)?;
    let (module, root) = s.registry.usable_module(&id).await?;
    let body = serde_json::to_vec(&serde_json::json!({ "includeNodes": q.include_nodes }))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let answer = s
        .rpc
        .call(
            &module,
            &root,
            Operation::GetConfiguredEndpoints,
            body,
            s.timeout(&headers)?,
        )
        .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/registry/v2/publishers", get(list))
        .route("/registry/v2/publishers/query", get(query_get).post(query))
        .route(
            "/registry/v2/publishers/{publisherId}",
            get(get_one).patch(patch),
        )
        .route(
            "/registry/v2/publishers/{publisherId}/endpoints",
            get(configured_endpoints),
        )
}
