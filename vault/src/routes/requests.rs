//! `/v2/requests`: signing and key pair requests and their workflow.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use iiot_auth::{Principal, Role};
use serde::Deserialize;

use super::{ApiJson, ApiQuery, AppState};
use crate::error::Result;
use crate::model::*;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/requests", get(list))
        .route("/v2/requests/query", post(query))
        .route("/v2/requests/sign", put(start_sign))
        .route("/v2/requests/sign/{id}", get(finish_sign))
        .route("/v2/requests/keypair", put(start_keypair))
        .route("/v2/requests/keypair/{id}", get(finish_keypair))
        .route("/v2/requests/{id}", get(get_one))
        .route("/v2/requests/{id}/approve", post(approve))
        .route("/v2/requests/{id}/reject", post(reject))
        .route("/v2/requests/{id}/accept", post(accept))
        .route("/v2/requests/{id}/revoke", post(revoke))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Page {
    next_page_link: Option<String>,
    page_size: Option<i64>,
}

impl Page {
    fn offset(&self) -> i64 {
        self.next_page_link
            .as_deref()
            .and_then(|l| l.parse().ok())
            .unwrap_or(0)
    }
}

#[utoipa::path(
    get,
    path = "/v2/requests",
    tag = "Requests",
    summary = "List certificate requests",
    params(("nextPageLink" = Option<String>, Query, description = "Continue a listing"), ("pageSize" = Option<i64>, Query, description = "Results per page")),
    responses(
        (status = 200, description = "Success", body = CertificateRequestQueryResponse),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(p): ApiQuery<Page>,
) -> Result<Json<CertificateRequestQueryResponse>> {
    who.require(Role::Reader)?;
    let q = CertificateRequestQuery::default();
    Ok(Json(
        s.vault
            .query_requests(&q, p.offset(), p.page_size.unwrap_or(100))
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v2/requests/query",
    tag = "Requests",
    summary = "Query certificate requests",
    request_body = CertificateRequestQuery,
    params(("nextPageLink" = Option<String>, Query, description = "Continue a listing"), ("pageSize" = Option<i64>, Query, description = "Results per page")),
    responses(
        (status = 200, description = "Success", body = CertificateRequestQueryResponse),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn query(
    State(s): State<AppState>,
    who: Principal,
    ApiQuery(p): ApiQuery<Page>,
    ApiJson(q): ApiJson<CertificateRequestQuery>,
) -> Result<Json<CertificateRequestQueryResponse>> {
    who.require(Role::Reader)?;
    Ok(Json(
        s.vault
            .query_requests(&q, p.offset(), p.page_size.unwrap_or(100))
            .await?,
    ))
}

#[utoipa::path(
    put,
    path = "/v2/requests/sign",
    tag = "Requests",
    summary = "Submit a certificate signing request (writer)",
    request_body = StartSigningRequest,
    responses(
        (status = 200, description = "Success", body = StartRequestResponse),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn start_sign(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<StartSigningRequest>,
) -> Result<Json<StartRequestResponse>> {
    who.require(Role::Writer)?;
    Ok(Json(StartRequestResponse {
        request_id: s.vault.submit_signing_request(&who, &body).await?,
    }))
}

#[utoipa::path(
    get,
    path = "/v2/requests/sign/{id}",
    tag = "Requests",
    summary = "Fetch the certificate of an approved signing request (writer)",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 200, description = "Success", body = FinishSigningRequestResponse),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn finish_sign(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<FinishSigningRequestResponse>> {
    who.require(Role::Writer)?;
    let r = s
        .vault
        .fetch(&who, &id, CertificateRequestType::SigningRequest, None)
        .await?;
    Ok(Json(FinishSigningRequestResponse {
        request: r.request,
        certificate: r.certificate,
    }))
}

#[utoipa::path(
    put,
    path = "/v2/requests/keypair",
    tag = "Requests",
    summary = "Request a new key pair and certificate (writer)",
    request_body = StartNewKeyPairRequest,
    responses(
        (status = 200, description = "Success", body = StartRequestResponse),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn start_keypair(
    State(s): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<StartNewKeyPairRequest>,
) -> Result<Json<StartRequestResponse>> {
    who.require(Role::Writer)?;
    Ok(Json(StartRequestResponse {
        request_id: s.vault.submit_keypair_request(&who, &body).await?,
    }))
}

#[utoipa::path(
    get,
    path = "/v2/requests/keypair/{id}",
    tag = "Requests",
    summary = "Fetch the certificate and, once, the private key (writer)",
    params(("id" = String, Path, description = "Id"), ("X-Private-Key-Password" = Option<String>, Header, description = "PFX password (PFX requests)")),
    responses(
        (status = 200, description = "Success", body = FinishNewKeyPairRequestResponse),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn finish_keypair(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<FinishNewKeyPairRequestResponse>> {
    who.require(Role::Writer)?;
    let password = headers
        .get("x-private-key-password")
        .and_then(|v| v.to_str().ok());
    Ok(Json(
        s.vault
            .fetch(&who, &id, CertificateRequestType::KeyPairRequest, password)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v2/requests/{id}",
    tag = "Requests",
    summary = "Get a certificate request",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 200, description = "Success", body = CertificateRequestRecord),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_one(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<CertificateRequestRecord>> {
    who.require(Role::Reader)?;
    Ok(Json(s.vault.request(&id).await?.to_record()))
}

#[utoipa::path(
    post,
    path = "/v2/requests/{id}/approve",
    tag = "Requests",
    summary = "Approve and issue (approver; never the submitter)",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 204, description = "Approved"),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn approve(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    who.require(Role::Approver)?;
    s.vault.approve(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v2/requests/{id}/reject",
    tag = "Requests",
    summary = "Reject (approver)",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 204, description = "Rejected"),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn reject(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    who.require(Role::Approver)?;
    s.vault.reject(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v2/requests/{id}/accept",
    tag = "Requests",
    summary = "Accept the issued certificate (writer)",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 204, description = "Accepted"),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn accept(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    who.require(Role::Writer)?;
    s.vault.accept(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v2/requests/{id}/revoke",
    tag = "Requests",
    summary = "Revoke the issued certificate (approver)",
    params(("id" = String, Path, description = "Id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn revoke(
    State(s): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    who.require(Role::Approver)?;
    s.vault.revoke(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
