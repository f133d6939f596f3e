//! `/v2/push`: where the vault pushes an application's certificate and trust list (OPC UA
//! Part 12 push model), one target per application, and the jobs that do it. A collection of
//! its own rather than a sub-resource of the application: a registered application has no
//! target until one is put.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use iiot_auth::{Principal, Role};
use serde::Deserialize;

use super::{ApiJson, ApiQuery, AppState};
use crate::error::Result;
use crate::model::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/push/targets", get(list_targets))
        .route(
            "/v2/push/targets/{applicationId}",
            put(set_target).get(get_target).delete(delete_target),
        )
        .route(
            "/v2/push/targets/{applicationId}/jobs",
            get(list_jobs).post(start_job),
        )
        .route("/v2/push/jobs/{jobId}", get(get_job))
}

#[utoipa::path(
    get,
    path = "/v2/push/targets",
    tag = "Push",
    summary = "Every push target, each with its newest job",
    responses(
        (status = 200, description = "Success", body = PushTargetList),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_targets(
    State(s): State<AppState>,
    who: Principal,
) -> Result<Json<PushTargetList>> {
    who.require(Role::Reader)?;
    Ok(Json(s.vault.push_targets().await?))
}

#[utoipa::path(
    put,
    path = "/v2/push/targets/{applicationId}",
    tag = "Push",
    summary = "Register or replace the push target of a server application (admin)",
    description = "The vault then keeps the server's certificate and trust list current over \
                   OPC UA (Part 12 ServerConfiguration): a first certificate, renewals inside \
                   the renewal window, and new CRLs. The password is stored sealed and never \
                   returned.",
    params(("applicationId" = String, Path, description = "Application id")),
    request_body = PushTargetRequest,
    responses(
        (status = 200, description = "Registered", body = PushTarget),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn set_target(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PushTargetRequest>,
) -> Result<Json<PushTarget>> {
    who.require(Role::Admin)?;
    Ok(Json(s.vault.set_push_target(&who, &id, &body).await?))
}

#[utoipa::path(
    get,
    path = "/v2/push/targets/{applicationId}",
    tag = "Push",
    summary = "The push target of an application, with its newest job",
    params(("applicationId" = String, Path, description = "Application id")),
    responses(
        (status = 200, description = "Success", body = PushTarget),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_target(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<PushTarget>> {
    who.require(Role::Reader)?;
    Ok(Json(s.vault.push_target(&id).await?))
}

#[utoipa::path(
    delete,
    path = "/v2/push/targets/{applicationId}",
    tag = "Push",
    summary = "Stop pushing to an application's server (admin); its jobs are deleted, a request they left waiting is rejected; 204 also when there was no target",
    params(("applicationId" = String, Path, description = "Application id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn delete_target(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    who.require(Role::Admin)?;
    s.vault.delete_push_target(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v2/push/targets/{applicationId}/jobs",
    tag = "Push",
    summary = "Push now: a new certificate and the trust list (writer)",
    params(("applicationId" = String, Path, description = "Application id")),
    responses(
        (status = 202, description = "Job created; it runs in the background", body = PushJob),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn start_job(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<PushJob>)> {
    who.require(Role::Writer)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(s.vault.start_push(&who, &id).await?),
    ))
}

#[derive(Deserialize)]
pub(super) struct JobsQuery {
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v2/push/targets/{applicationId}/jobs",
    tag = "Push",
    summary = "An application's push jobs, newest first",
    params(
        ("applicationId" = String, Path, description = "Application id"),
        ("limit" = Option<i64>, Query, description = "At most this many (1 to 1000, default 100)")
    ),
    responses(
        (status = 200, description = "Success", body = PushJobList),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_jobs(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> Result<Json<PushJobList>> {
    who.require(Role::Reader)?;
    Ok(Json(s.vault.push_jobs(&id, q.limit.unwrap_or(100)).await?))
}

#[utoipa::path(
    get,
    path = "/v2/push/jobs/{jobId}",
    tag = "Push",
    summary = "One push job",
    params(("jobId" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Success", body = PushJob),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_job(
    State(s): State<AppState>,
    who: Principal,
    Path(job_id): Path<String>,
) -> Result<Json<PushJob>> {
    who.require(Role::Reader)?;
    Ok(Json(s.vault.push_job(&job_id).await?))
}
