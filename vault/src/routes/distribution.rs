//! Anonymous CRL distribution and issuer (AIA) endpoints: relying parties fetch these without
//! credentials, as the URLs inside issued certificates promise.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::error::Result;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/crl/{serial}", get(crl))
        .route("/v2/issuer/{serial}", get(issuer))
}

#[utoipa::path(
    get,
    path = "/v2/crl/{serial}",
    tag = "Distribution",
    summary = "The current CRL of a CA (DER, anonymous)",
    params(("serial" = String, Path, description = "CA serial number (hex)")),
    responses(
        (status = 200, description = "application/pkix-crl"),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
)]
pub(super) async fn crl(
    State(s): State<AppState>,
    Path(serial): Path<String>,
) -> Result<impl IntoResponse> {
    let der = s.vault.crl(&serial.to_ascii_uppercase()).await?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], der))
}

#[utoipa::path(
    get,
    path = "/v2/issuer/{serial}",
    tag = "Distribution",
    summary = "A CA certificate (DER, anonymous)",
    params(("serial" = String, Path, description = "CA serial number (hex)")),
    responses(
        (status = 200, description = "application/pkix-cert"),
        (status = "4XX", description = "problem+json with the OPC UA status symbol"),
    ),
)]
pub(super) async fn issuer(
    State(s): State<AppState>,
    Path(serial): Path<String>,
) -> Result<impl IntoResponse> {
    let der = s.vault.issuer(&serial.to_ascii_uppercase()).await?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-cert")], der))
}
