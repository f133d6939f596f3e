//! `/v2/applications`: GDS application registrations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use iiot_auth::{Principal, Role};
use serde::Deserialize;

use super::{ApiJson, ApiQuery, AppState};
use crate::error::Result;
use crate::model::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/applications", post(register).get(list))
        .route("/v2/applications/query", post(query))
        .route(
            "/v2/applications/{id}",
            get(get_one).patch(update).delete(unregister),
        )
        .route(
            "/v2/applications/{id}/certificatestatus",
            get(certificate_status),
        )
}

#[utoipa::path(
    post,
    path = "/v2/applications",
    tag = "Applications",
    summary = "Register an application (GDS ApplicationRecord)",
    request_body = ApplicationRequest,
    responses(
        (status = 201, description = "Registered", body = ApplicationRecord),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn register(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<ApplicationRequest>,
) -> Result<(StatusCode, Json<ApplicationRecord>)> {
    who.require(Role::Writer)?;
    Ok((
        StatusCode::CREATED,
        Json(s.vault.register_application(&who, &body).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v2/applications",
    tag = "Applications",
    summary = "List registered applications",
    responses(
        (status = 200, description = "Success", body = ApplicationList),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(s): State<AppState>,
    who: Principal,
) -> Result<Json<ApplicationList>> {
    who.require(Role::Reader)?;
    let applications = s
        .vault
        .query_applications(&ApplicationQuery::default())
        .await?;
    Ok(Json(ApplicationList { applications }))
}

#[utoipa::path(
    post,
    path = "/v2/applications/query",
    tag = "Applications",
    summary = "Query applications by URI, type or name",
    request_body = ApplicationQuery,
    responses(
        (status = 200, description = "Success", body = ApplicationList),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn query(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(q): ApiJson<ApplicationQuery>,
) -> Result<Json<ApplicationList>> {
    who.require(Role::Reader)?;
    Ok(Json(ApplicationList {
        applications: s.vault.query_applications(&q).await?,
    }))
}

#[utoipa::path(
    get,
    path = "/v2/applications/{id}",
    tag = "Applications",
    summary = "Get an application",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 200, description = "Success", body = ApplicationRecord),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_one(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<ApplicationRecord>> {
    who.require(Role::Reader)?;
    Ok(Json(s.vault.application(&id).await?.to_record()))
}

#[utoipa::path(
    patch,
    path = "/v2/applications/{id}",
    tag = "Applications",
    summary = "Update an application",
    request_body = ApplicationRequest,
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 200, description = "Success", body = ApplicationRecord),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn update(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ApplicationRequest>,
) -> Result<Json<ApplicationRecord>> {
    who.require(Role::Writer)?;
    Ok(Json(s.vault.update_application(&who, &id, &body).await?))
}

/// Unregistering revokes certificates, so it takes the approver role.
#[utoipa::path(
    delete,
    path = "/v2/applications/{id}",
    tag = "Applications",
    summary = "Unregister an application and revoke every certificate it received (approver)",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 204, description = "Unregistered"),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn unregister(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    who.require(Role::Approver)?;
    s.vault.unregister_application(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatusQuery {
    group_id: Option<String>,
    certificate_type: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v2/applications/{id}/certificatestatus",
    tag = "Applications",
    summary = "Whether the application's certificate needs renewal",
    params(("id" = String, Path, description = "Id"), ("groupId" = Option<String>, Query, description = "Default DefaultApplicationGroup"), ("certificateType" = Option<String>, Query, description = "Default: the group's first type")),
    responses(
        (status = 200, description = "Success", body = CertificateStatus),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn certificate_status(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Json<CertificateStatus>> {
    who.require(Role::Reader)?;
    let group = q
        .group_id
        .as_deref()
        .unwrap_or(crate::config::DEFAULT_GROUPS[0].0);
    Ok(Json(
        s.vault
            .certificate_status(&id, group, q.certificate_type.as_deref())
            .await?,
    ))
}
