//! `/twin/v2/...`: each route resolves the endpoint to its module and connection, wraps the
//! caller's request in `{connection, request}` and sends it to the module's method over MQTT;
//! the module's response model is the answer.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use iiot_api::Operation;
use iiot_auth::{Principal, Role};
use serde_json::{json, Value};

use super::{AppState, JsonBody, QueryParams};
use crate::error::ApiError;

async fn forward(
    s: &AppState,
    endpoint_id: &str,
    headers: &HeaderMap,
    op: Operation,
    request: Value,
) -> Result<Response, ApiError> {
    forward_with(
        s,
        endpoint_id,
        headers,
        op,
        |connection| json!({ "connection": connection, "request": request }),
    )
    .await
}

/// Sends the module `body(connection)`; for methods whose body is not an envelope.
pub(super) async fn forward_with(
    s: &AppState,
    endpoint_id: &str,
    headers: &HeaderMap,
    op: Operation,
    body: impl FnOnce(Value) -> Value,
) -> Result<Response, ApiError> {
    let timeout = s.timeout(headers)?;
    let route = s.registry.route(endpoint_id).await?;
    let body = serde_json::to_vec(&body(route.connection))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let answer = s
        .rpc
        .call(&route.module, &route.root, op, body, timeout)
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}

macro_rules! twin_post {
    ($name:ident, $op:ident, $path:literal, $summary:literal) => {
        #[utoipa::path(
            post,
            path = $path,
            tag = "Twin",
            summary = $summary,
            request_body = serde_json::Value,
            params(("endpointId" = String, Path), ("x-iiot-timeout-ms" = Option<u64>, Header)),
            responses(
                (status = 200, description = "The module's response model", body = serde_json::Value),
                (status = "4XX", description = "problem+json", body = serde_json::Value),
                (status = 503, description = "Module offline", body = serde_json::Value),
                (status = 504, description = "Module did not answer in time", body = serde_json::Value),
            ),
            security(("bearer" = []))
        )]
        async fn $name(
            State(s): State<AppState>,
            p: Principal,
            Path(endpoint_id): Path<String>,
            headers: HeaderMap,
            JsonBody(request): JsonBody<Value>,
        ) -> Result<Response, ApiError> {
            p.require(Role::Writer)?;
            forward(&s, &endpoint_id, &headers, Operation::$op, request).await
        }
    };
}

twin_post!(
    browse,
    Browse,
    "/twin/v2/browse/{endpointId}",
    "Browse the first references of a node (module method Browse)"
);
twin_post!(
    browse_next,
    BrowseNext,
    "/twin/v2/browse/{endpointId}/next",
    "BrowseNext"
);
twin_post!(
    browse_path,
    BrowsePath,
    "/twin/v2/browse/{endpointId}/path",
    "BrowsePath"
);
twin_post!(
    read_value,
    ValueRead,
    "/twin/v2/read/{endpointId}",
    "ValueRead"
);
twin_post!(
    read_attributes,
    NodeRead,
    "/twin/v2/read/{endpointId}/attributes",
    "NodeRead"
);
twin_post!(
    write_value,
    ValueWrite,
    "/twin/v2/write/{endpointId}",
    "ValueWrite"
);
twin_post!(
    write_attributes,
    NodeWrite,
    "/twin/v2/write/{endpointId}/attributes",
    "NodeWrite"
);
twin_post!(call, MethodCall, "/twin/v2/call/{endpointId}", "MethodCall");
twin_post!(
    call_metadata,
    MethodMetadata,
    "/twin/v2/call/{endpointId}/metadata",
    "MethodMetadata"
);

/// Query of the GET forms of browse, browse next and read.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NodeQuery {
    node_id: Option<String>,
    continuation_token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/twin/v2/browse/{endpointId}",
    tag = "Twin",
    summary = "Browse a node (default: the Objects folder) by query",
    params(("endpointId" = String, Path), ("nodeId" = Option<String>, Query)),
    responses(
        (status = 200, description = "BrowseFirstResponseModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(super) async fn browse_get(
    State(s): State<AppState>,
    p: Principal,
    Path(endpoint_id): Path<String>,
    QueryParams(q): QueryParams<NodeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    p.require(Role::Writer)?;
    let request = match q.node_id {
        Some(n) => json!({ "nodeId": n }),
        None => json!({}),
    };
    forward(&s, &endpoint_id, &headers, Operation::Browse, request).await
}

#[utoipa::path(
    get,
    path = "/twin/v2/browse/{endpointId}/next",
    tag = "Twin",
    summary = "Continue a browse by query",
    params(("endpointId" = String, Path), ("continuationToken" = String, Query)),
    responses(
        (status = 200, description = "BrowseNextResponseModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(super) async fn browse_next_get(
    State(s): State<AppState>,
    p: Principal,
    Path(endpoint_id): Path<String>,
    QueryParams(q): QueryParams<NodeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    p.require(Role::Writer)?;
    let token = q
        .continuation_token
        .ok_or_else(|| ApiError::BadRequest("continuationToken is required".into()))?;
    let request = json!({ "continuationToken": token });
    forward(&s, &endpoint_id, &headers, Operation::BrowseNext, request).await
}

#[utoipa::path(
    get,
    path = "/twin/v2/read/{endpointId}",
    tag = "Twin",
    summary = "Read a node's value by query",
    params(("endpointId" = String, Path), ("nodeId" = String, Query)),
    responses(
        (status = 200, description = "ValueReadResponseModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(super) async fn read_get(
    State(s): State<AppState>,
    p: Principal,
    Path(endpoint_id): Path<String>,
    QueryParams(q): QueryParams<NodeQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    p.require(Role::Writer)?;
    let node = q
        .node_id
        .ok_or_else(|| ApiError::BadRequest("nodeId is required".into()))?;
    forward(
        &s,
        &endpoint_id,
        &headers,
        Operation::ValueRead,
        json!({ "nodeId": node }),
    )
    .await
}

#[utoipa::path(
    get,
    path = "/twin/v2/capabilities/{endpointId}",
    tag = "Twin",
    summary = "Server capabilities",
    params(("endpointId" = String, Path)),
    responses(
        (status = 200, description = "Success", body = serde_json::Value),
        (status = "4XX", description = "problem+json with the OPC UA status symbol", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
async fn capabilities(
    State(s): State<AppState>,
    p: Principal,
    Path(endpoint_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    p.require(Role::Reader)?;
    forward(
        &s,
        &endpoint_id,
        &headers,
        Operation::GetServerCapabilities,
        Value::Null,
    )
    .await
}

twin_post!(
    publish_start,
    PublishStart,
    "/publisher/v2/publish/{endpointId}/start",
    "Start publishing a node's value changes as telemetry (module method PublishStart)"
);
twin_post!(
    publish_stop,
    PublishStop,
    "/publisher/v2/publish/{endpointId}/stop",
    "Stop publishing a node (module method PublishStop)"
);
twin_post!(
    publish_bulk,
    PublishBulk,
    "/publisher/v2/publish/{endpointId}/bulk",
    "Add and remove published nodes in one call (module method PublishBulk)"
);
twin_post!(
    publish_list,
    PublishList,
    "/publisher/v2/publish/{endpointId}",
    "The nodes published on the endpoint (module method PublishList)"
);

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    continuation_token: Option<String>,
}

#[utoipa::path(
    get,
    path = "/publisher/v2/publish/{endpointId}",
    tag = "Twin",
    summary = "The nodes published on the endpoint",
    params(("endpointId" = String, Path), ("continuationToken" = Option<String>, Query)),
    responses(
        (status = 200, description = "PublishedItemListResponseModel", body = serde_json::Value),
        (status = "4XX", description = "problem+json", body = serde_json::Value),
    ),
    security(("bearer" = []))
)]
pub(super) async fn publish_list_get(
    State(s): State<AppState>,
    p: Principal,
    Path(endpoint_id): Path<String>,
    QueryParams(q): QueryParams<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    p.require(Role::Reader)?;
    forward(
        &s,
        &endpoint_id,
        &headers,
        Operation::PublishList,
        json!({ "continuationToken": q.continuation_token }),
    )
    .await
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/twin/v2/browse/{endpointId}", post(browse).get(browse_get))
        .route(
            "/twin/v2/browse/{endpointId}/next",
            post(browse_next).get(browse_next_get),
        )
        .route("/twin/v2/browse/{endpointId}/path", post(browse_path))
        .route("/twin/v2/read/{endpointId}", post(read_value).get(read_get))
        .route(
            "/twin/v2/read/{endpointId}/attributes",
            post(read_attributes),
        )
        .route("/twin/v2/write/{endpointId}", post(write_value))
        .route(
            "/twin/v2/write/{endpointId}/attributes",
            post(write_attributes),
        )
        .route("/twin/v2/call/{endpointId}", post(call))
        .route("/twin/v2/call/{endpointId}/metadata", post(call_metadata))
        .route("/twin/v2/capabilities/{endpointId}", get(capabilities))
        .route(
            "/publisher/v2/publish/{endpointId}",
            post(publish_list).get(publish_list_get),
        )
        .route(
            "/publisher/v2/publish/{endpointId}/start",
            post(publish_start),
        )
        .route(
            "/publisher/v2/publish/{endpointId}/stop",
            post(publish_stop),
        )
        .route(
            "/publisher/v2/publish/{endpointId}/bulk",
            post(publish_bulk),
        )
}
