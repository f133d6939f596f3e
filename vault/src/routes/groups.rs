//! `/v2/groups`: certificate groups, their trust lists and CA renewal; `/v2/audit`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use iiot_auth::{Principal, Role};
use serde::Deserialize;

use super::{ApiJson, ApiQuery, AppState};
use crate::error::Result;
use crate::model::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/groups", get(list))
        .route("/v2/groups/{id}", get(get_one).post(update))
        .route("/v2/groups/{id}/trustlist", get(trust_list))
        .route("/v2/groups/{id}/renew", post(renew))
        .route("/v2/audit", get(audit))
}

#[utoipa::path(
    get,
    path = "/v2/groups",
    tag = "Groups",
    summary = "List certificate groups",
    responses(
        (status = 200, description = "Success", body = TrustGroupRegistrationList),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(s): State<AppState>,
    who: Principal,
) -> Result<Json<TrustGroupRegistrationList>> {
    who.require(Role::Reader)?;
    Ok(Json(TrustGroupRegistrationList {
        registrations: s.vault.groups().await?,
    }))
}

#[utoipa::path(
    get,
    path = "/v2/groups/{id}",
    tag = "Groups",
    summary = "Get a certificate group and its CAs",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 200, description = "Success", body = TrustGroupRegistration),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_one(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<TrustGroupRegistration>> {
    who.require(Role::Reader)?;
    let g = s.vault.group(&id).await?;
    Ok(Json(s.vault.group_registration(&g).await?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TrustListQuery {
    certificate_type: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v2/groups/{id}/trustlist",
    tag = "Groups",
    summary = "The group's trust list with current CRLs",
    params(("id" = String, Path, description = "Id"), ("certificateType" = Option<String>, Query, description = "Only this certificate type")),
    responses(
        (status = 200, description = "Success", body = TrustList),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn trust_list(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TrustListQuery>,
) -> Result<Json<TrustList>> {
    who.require(Role::Reader)?;
    Ok(Json(
        s.vault
            .trust_list(&id, q.certificate_type.as_deref())
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v2/groups/{id}",
    tag = "Groups",
    summary = "Change a group's issuing policy (admin)",
    request_body = TrustGroupUpdateRequest,
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 200, description = "Success", body = TrustGroupRegistration),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn update(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TrustGroupUpdateRequest>,
) -> Result<Json<TrustGroupRegistration>> {
    who.require(Role::Admin)?;
    Ok(Json(s.vault.update_group(&who, &id, &body).await?))
}

#[utoipa::path(
    post,
    path = "/v2/groups/{id}/renew",
    tag = "Groups",
    summary = "Renew the group's CAs; old CAs stay trusted (admin)",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 200, description = "Success", body = TrustGroupRegistration),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn renew(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<TrustGroupRegistration>> {
    who.require(Role::Admin)?;
    Ok(Json(s.vault.renew_group(&who, &id).await?))
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v2/audit",
    tag = "Audit",
    summary = "The audit log of state changes (admin)",
    params(("after" = Option<i64>, Query, description = "Entries after this id"), ("limit" = Option<i64>, Query, description = "At most this many")),
    responses(
        (status = 200, description = "Success", body = AuditList),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn audit(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>> {
    who.require(Role::Admin)?;
    Ok(Json(
        s.vault
            .audit(q.after.unwrap_or(0), q.limit.unwrap_or(1000))
            .await?,
    ))
}
